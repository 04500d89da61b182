#include "cpl0.h"
#include "io.h"
#include "timer.h"

#define UNCALIBRATED_ASSUMED_HZ 5000000000ull
/* kvmclock is filled by the host on the next vCPU entry after the MSR write; that has happened long before
 * ring 3 gets here, but bound the wait anyway. */
#define KVMCLOCK_WAIT_SPINS 10000000

static uint64_t tsc_hz;
static const char *source = "none";

static uint64_t kvmclock_tsc_hz(void)
{
    for (int i = 0; i < KVMCLOCK_WAIT_SPINS; i++) {
        uint32_t version = kvmclock_info.version;
        barrier();
        uint32_t mul = kvmclock_info.tsc_to_system_mul;
        int8_t shift = kvmclock_info.tsc_shift;
        barrier();
        /* An odd version means the host is mid-update; 0 means not written yet. */
        if (version != 0 && (version & 1) == 0 && version == kvmclock_info.version) {
            if (mul == 0)
                return 0;
            /* ns = ((tsc << shift) * mul) >> 32  =>  Hz = 1e9 * 2^32 / (mul * 2^shift). 1e9 << 32 fits in u64. */
            uint64_t hz = (1000000000ull << 32) / mul;
            if (shift > 0)
                hz >>= shift;
            else if (shift < 0)
                hz <<= -shift;
            return hz;
        }
        cpu_relax();
    }
    return 0;
}

uint64_t timer_init(void)
{
    if (clock_probe.cpuid_tsc_hz != 0) {
        tsc_hz = clock_probe.cpuid_tsc_hz;
        source = "cpuid";
    } else if (clock_probe.kvmclock_enabled) {
        tsc_hz = kvmclock_tsc_hz();
        if (tsc_hz != 0)
            source = "kvmclock";
    }
    return tsc_hz;
}

uint64_t timer_tsc_hz(void) { return tsc_hz; }

const char *timer_source(void) { return source; }

uint64_t deadline_after_ms(uint32_t ms)
{
    uint64_t hz = tsc_hz != 0 ? tsc_hz : UNCALIBRATED_ASSUMED_HZ;
    return rdtsc() + hz / 1000 * ms;
}
