/* TSC-based time: deadlines for every poll loop (so nothing waits forever) and the fps measurement. */
#ifndef FW_TIMER_H
#define FW_TIMER_H

#include <stdbool.h>
#include <stdint.h>

/* The tick counter the timing code runs on: the TSC on x86_64; on arm64 the generic timer's virtual count
 * (CNTVCT_EL0, at CNTFRQ_EL0 Hz), under the same name so the portable code reads one counter. */
#if defined(__aarch64__)
static inline uint64_t rdtsc(void)
{
    uint64_t v;
    __asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(v) : : "memory");
    return v;
}
#else
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* Determines the TSC frequency (CPUID values probed at CPL0, else kvmclock; arm64: CNTFRQ_EL0). Returns 0 when
 * unknown. */
uint64_t timer_init(void);

/* TSC frequency in Hz, 0 when not calibrated. */
uint64_t timer_tsc_hz(void);

/* How the frequency was found: "cpuid", "kvmclock", "cntfrq" (arm64) or "none". */
const char *timer_source(void);

/* A deadline `ms` from now. Uncalibrated, it assumes a 5 GHz TSC so the real wait is never shorter than asked. */
uint64_t deadline_after_ms(uint32_t ms);

static inline bool deadline_passed(uint64_t deadline) { return (int64_t)(rdtsc() - deadline) > 0; }

#endif
