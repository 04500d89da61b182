/* arm64 time: the generic timer's virtual counter (CNTVCT_EL0, read by rdtsc() in ../timer.h) at CNTFRQ_EL0 Hz.
 * KVM and QEMU both report the counter frequency there, so there is nothing to calibrate. */
#include "../timer.h"

/* Uncalibrated (CNTFRQ_EL0 reads 0, which firmware should never leave): assume 1 GHz, the highest frequency the
 * architecture defines (ARMv8.6 fixes it at 1 GHz), so a wait is never shorter than asked. */
#define UNCALIBRATED_ASSUMED_HZ 1000000000ull

static uint64_t counter_hz;
static const char *source = "none";

uint64_t timer_init(void)
{
    uint64_t hz;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(hz));
    hz &= 0xFFFFFFFFu; /* the upper half is RES0 */
    if (hz != 0) {
        counter_hz = hz;
        source = "cntfrq";
    }
    return counter_hz;
}

uint64_t timer_tsc_hz(void) { return counter_hz; }

const char *timer_source(void) { return source; }

uint64_t deadline_after_ms(uint32_t ms)
{
    uint64_t hz = counter_hz != 0 ? counter_hz : UNCALIBRATED_ASSUMED_HZ;
    return rdtsc() + hz / 1000 * ms;
}
