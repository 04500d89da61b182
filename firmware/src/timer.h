/* TSC-based time: deadlines for every poll loop (so nothing waits forever) and the fps measurement. */
#ifndef FW_TIMER_H
#define FW_TIMER_H

#include <stdbool.h>
#include <stdint.h>

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Determines the TSC frequency (CPUID values probed at CPL0, else kvmclock). Returns 0 when unknown. */
uint64_t timer_init(void);

/* TSC frequency in Hz, 0 when not calibrated. */
uint64_t timer_tsc_hz(void);

/* How the frequency was found: "cpuid", "kvmclock" or "none". */
const char *timer_source(void);

/* A deadline `ms` from now. Uncalibrated, it assumes a 5 GHz TSC so the real wait is never shorter than asked. */
uint64_t deadline_after_ms(uint32_t ms);

static inline bool deadline_passed(uint64_t deadline) { return (int64_t)(rdtsc() - deadline) > 0; }

#endif
