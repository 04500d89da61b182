namespace Vmm.PerfLab.Measurement;

internal static class Percentiles
{
    /// <summary>The <paramref name="p"/>-th percentile (0–100) of <paramref name="values"/> by the nearest-rank
    /// method; sorts the list. NaN for none.</summary>
    public static double Of(List<double> values, double p)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }
        values.Sort();
        int rank = (int)Math.Ceiling(p / 100 * values.Count);
        return values[Math.Clamp(rank - 1, 0, values.Count - 1)];
    }
}
