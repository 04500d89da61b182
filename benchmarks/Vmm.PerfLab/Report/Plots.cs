using ScottPlot;

namespace Vmm.PerfLab.Report;

/// <summary>The figures of a run, each as PNG and SVG, titled with the host kind they were measured on.</summary>
internal static class Plots
{
    private const int Width = 1100;
    private const int Height = 560;

    public static List<string> Write(LabResults results, string directory)
    {
        var written = new List<string>();
        string host = $"{results.Machine.HostKind}, {results.Machine.Cpu}";
        if (results.Transport.Count > 0)
        {
            written.AddRange(Save(Transport(results.Transport, host), Path.Combine(directory, "transport")));
        }
        if (Goals(results) is { } goals)
        {
            written.AddRange(Save(goals, Path.Combine(directory, "goals")));
        }
        if (results.Streaming.Count > 0)
        {
            written.AddRange(Save(StreamingCost(results.Streaming, host), Path.Combine(directory, "streaming-cost")));
            written.AddRange(Save(StreamingFps(results.Streaming, host), Path.Combine(directory, "streaming-fps")));
        }
        if (results.Footprint.Count > 0)
        {
            written.AddRange(Save(Footprint(results.Footprint, host), Path.Combine(directory, "footprint")));
        }
        return written;
    }

    private static string[] Save(Plot plot, string pathWithoutExtension)
    {
        string png = pathWithoutExtension + ".png", svg = pathWithoutExtension + ".svg";
        plot.SavePng(png, Width, Height);
        plot.SaveSvg(svg, Width, Height);
        return [png, svg];
    }

    /// <summary>Every ratio with a goal, as a fraction of its goal (below 1 is met), labelled with the ratio and
    /// the goal themselves.</summary>
    private static Plot? Goals(LabResults r)
    {
        var items = new List<(string Label, double Ratio, double Goal)>();
        foreach (TransportResult t in r.Transport)
        {
            if (t.Width == 1920 && t.Height == 1080)
            {
                items.Add(($"transport 1080p\n{ShortDriver(t.Driver)}", t.Ratio, t.Goal));
            }
        }
        foreach (BootResult b in r.Boot)
        {
            items.Add(($"boot, vmm {b.Build ?? "JIT"}\n/ QEMU microvm", b.Ratio, b.Goal));
        }
        foreach (ExitResult e in r.Exits)
        {
            items.Add(("port-write exit\n/ C KVM loop", e.Ratio, e.Goal));
        }
        if (items.Count == 0)
        {
            return null;
        }
        var plot = new Plot();
        var ticks = new Tick[items.Count];
        var bars = new List<Bar>();
        for (int i = 0; i < items.Count; i++)
        {
            double v = items[i].Ratio / items[i].Goal;
            bars.Add(new Bar { Position = i, ValueBase = -1.2, Value = Math.Log10(v), FillColor = v <= 1 ? Colors.SeaGreen : Colors.IndianRed });
            ticks[i] = new Tick(i, $"{items[i].Label}\n{items[i].Ratio:G3} (goal ≤ {items[i].Goal})");
        }
        plot.Add.Bars(bars);
        plot.Axes.Left.TickGenerator = LogTicks();
        var line = plot.Add.HorizontalLine(0);
        line.Color = Colors.OrangeRed;
        line.LegendText = "goal";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks);
        plot.Axes.Margins(bottom: 0);
        plot.Title($"Ratios against their goals, same run ({r.Machine.HostKind}, {r.Machine.Cpu})");
        plot.YLabel("ratio ÷ goal, log scale (≤ 1 meets the goal)");
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    /// <summary>Transport CPU per frame as a fraction of one copy of the frame, grouped by resolution, one colour per
    /// driver, on a log scale (the ratios span four decades: a 640×480 copy is cheap, a 4K one is not), with the
    /// goal.</summary>
    private static Plot Transport(List<TransportResult> rows, string host)
    {
        var plot = new Plot();
        string[] drivers = ["testbed", "testbed, stepped", "firmware guest", "firmware guest, NativeAOT"];
        Color[] colours = [Colors.SteelBlue, Colors.SeaGreen, Colors.DarkOrange, Colors.Peru];
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        double floor = Math.Floor(Math.Log10(Math.Min(rows[0].Goal, MinRatio(rows)))) - 0.2;
        double x = 0;
        foreach ((uint w, uint h) in Resolutions(rows))
        {
            foreach (TransportResult r in rows)
            {
                if (r.Width != w || r.Height != h)
                {
                    continue;
                }
                int d = Math.Max(0, Array.IndexOf(drivers, r.Driver));
                bars.Add(new Bar { Position = x, ValueBase = floor, Value = Math.Log10(r.Ratio), FillColor = colours[d] });
                ticks.Add(new Tick(x, $"{w}x{h}\n{r.TransportNsPerFrame / 1000:F1} / {r.CopyNsPerFrame / 1000:F0} µs"));
                x++;
            }
            x += 0.8; // a gap between resolutions
        }
        plot.Add.Bars(bars);
        for (int d = 0; d < drivers.Length; d++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = drivers[d], FillColor = colours[d] });
        }
        var goal = plot.Add.HorizontalLine(Math.Log10(rows[0].Goal));
        goal.Color = Colors.OrangeRed;
        goal.LegendText = $"goal at 1080p: {rows[0].Goal}";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        plot.Axes.Left.TickGenerator = LogTicks();
        plot.Axes.Margins(bottom: 0);
        plot.Title($"Transport CPU per NV12 frame ÷ one memcpy of the frame ({host})");
        plot.YLabel("ratio (log scale; labels: CPU per frame / copy)");
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    /// <summary>Ticks for an axis that holds log10 of the values, labelled with the values.</summary>
    private static ScottPlot.TickGenerators.NumericAutomatic LogTicks() => new()
    {
        MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
        IntegerTicksOnly = true,
        LabelFormatter = y => Math.Pow(10, y).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string ShortDriver(string driver) => driver switch
    {
        "testbed, stepped" => "stepped testbed",
        "firmware guest" => "VM, JIT",
        "firmware guest, NativeAOT" => "VM, NativeAOT",
        _ => driver,
    };

    private static double MinRatio(List<TransportResult> rows)
    {
        double min = double.MaxValue;
        foreach (TransportResult r in rows)
        {
            min = Math.Min(min, r.Ratio);
        }
        return min;
    }

    private static List<(uint Width, uint Height)> Resolutions(List<TransportResult> rows)
    {
        var sizes = new List<(uint, uint)>();
        foreach (TransportResult r in rows)
        {
            if (!sizes.Contains((r.Width, r.Height)))
            {
                sizes.Add((r.Width, r.Height));
            }
        }
        sizes.Sort((a, b) => ((ulong)a.Item1 * a.Item2).CompareTo((ulong)b.Item1 * b.Item2));
        return sizes;
    }

    /// <summary>Per build, VMM RSS (anonymous and file-backed pages stacked) beside start-up time, each against its
    /// NativeAOT goal; one plot with a right-hand axis for milliseconds.</summary>
    private static Plot Footprint(List<FootprintResult> rows, string host)
    {
        var plot = new Plot();
        var ticks = new List<Tick>();
        var bars = new List<Bar>();
        var startupBars = new List<Bar>();
        for (int i = 0; i < rows.Count; i++)
        {
            FootprintResult r = rows[i];
            double x = i * 3;
            bars.Add(new Bar { Position = x, ValueBase = 0, Value = r.VmmAnonymousRssMiB, FillColor = Colors.SteelBlue });
            bars.Add(new Bar { Position = x, ValueBase = r.VmmAnonymousRssMiB, Value = r.VmmAnonymousRssMiB + r.VmmFileRssMiB, FillColor = Colors.LightSteelBlue });
            startupBars.Add(new Bar { Position = x + 1, Value = r.StartupMs, FillColor = Colors.Orange });
            ticks.Add(new Tick(x, $"{r.Build}\nRSS {r.VmmRssMiB:F1} MiB"));
            ticks.Add(new Tick(x + 1, $"{r.Build}\nstart {r.StartupMs:F0} ms"));
        }
        plot.Add.Bars(bars);
        var startup = plot.Add.Bars(startupBars);
        startup.Axes.YAxis = plot.Axes.Right;
        var rssGoal = plot.Add.HorizontalLine(rows[0].RssGoalMiB, color: Colors.SteelBlue, pattern: LinePattern.Dashed);
        rssGoal.LegendText = $"RSS goal (NativeAOT): {rows[0].RssGoalMiB} MiB";
        var startupGoal = plot.Add.HorizontalLine(rows[0].StartupGoalMs, color: Colors.Orange, pattern: LinePattern.Dashed);
        startupGoal.Axes.YAxis = plot.Axes.Right;
        startupGoal.LegendText = $"start-up goal (NativeAOT): {rows[0].StartupGoalMs} ms";
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "VMM RSS, anonymous", FillColor = Colors.SteelBlue });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "VMM RSS, file-backed", FillColor = Colors.LightSteelBlue });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "start → first guest instruction", FillColor = Colors.Orange });
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        plot.Axes.Margins(bottom: 0);
        plot.Axes.SetLimitsY(0, Math.Max(rows.Max(r => r.VmmRssMiB), rows[0].RssGoalMiB) * 1.15, plot.Axes.Left);
        plot.Axes.SetLimitsY(0, Math.Max(rows.Max(r => r.StartupMs), rows[0].StartupGoalMs) * 1.15, plot.Axes.Right);
        plot.Title($"Footprint: VMM RSS without guest RAM, and start-up ({host})");
        plot.Axes.Left.Label.Text = "VMM RSS (MiB)";
        plot.Axes.Right.Label.Text = "start → first guest instruction (ms)";
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    /// <summary>Device CPU per frame against pixels per frame: how the cost grows with the work, vectors against
    /// the scalar reference.</summary>
    private static Plot StreamingCost(List<StreamingResult> rows, string host)
    {
        var plot = new Plot();
        foreach (var series in Series(rows))
        {
            double[] xs = new double[series.Rows.Count], ys = new double[series.Rows.Count];
            for (int i = 0; i < xs.Length; i++)
            {
                xs[i] = series.Rows[i].Width * series.Rows[i].Height / 1e6;
                ys[i] = series.Rows[i].DeviceCpuUsPerFrame;
            }
            var scatter = plot.Add.Scatter(xs, ys);
            scatter.LegendText = series.Name;
            scatter.MarkerSize = 9;
            // Solid lines only: Skia's SVG canvas cannot draw dash patterns (it prints a warning and drops them).
            scatter.LineWidth = series.Name.EndsWith("scalar", StringComparison.Ordinal) ? 1 : 2;
        }
        plot.Title($"Streaming: device CPU per frame vs pixels per frame ({host})");
        plot.XLabel("megapixels per frame");
        plot.YLabel("device CPU per frame (µs)");
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }

    /// <summary>Delivered fps per case, against the requested rate.</summary>
    private static Plot StreamingFps(List<StreamingResult> rows, string host)
    {
        var plot = new Plot();
        var ticks = new List<Tick>();
        var bars = new List<Bar>();
        Color[] palette = [Colors.SteelBlue, Colors.Orange, Colors.SeaGreen, Colors.IndianRed];
        int s = 0;
        var seriesList = Series(rows);
        foreach (var series in seriesList)
        {
            for (int i = 0; i < series.Rows.Count; i++)
            {
                double x = i * (seriesList.Count + 1) + s;
                bars.Add(new Bar { Position = x, Value = series.Rows[i].Fps, FillColor = palette[s % palette.Length] });
                if (s == 0)
                {
                    ticks.Add(new Tick(x + (seriesList.Count - 1) / 2.0, $"{series.Rows[i].Width}x{series.Rows[i].Height}"));
                }
            }
            s++;
        }
        plot.Add.Bars(bars);
        for (int i = 0; i < seriesList.Count; i++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = seriesList[i].Name, FillColor = palette[i % palette.Length] });
        }
        var requested = plot.Add.HorizontalLine(rows[0].RequestedFps);
        requested.Color = Colors.OrangeRed;
        requested.LegendText = $"requested {rows[0].RequestedFps} fps";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        plot.Axes.Margins(bottom: 0);
        plot.Title($"Streaming: delivered fps ({host})");
        plot.YLabel("frames per second");
        plot.ShowLegend(Alignment.LowerLeft);
        return plot;
    }

    /// <summary>Rows grouped by format and generator ("NV12 simd"), each in ascending frame size.</summary>
    private static List<(string Name, List<StreamingResult> Rows)> Series(List<StreamingResult> rows)
    {
        var series = new List<(string Name, List<StreamingResult> Rows)>();
        foreach (StreamingResult r in rows)
        {
            string name = $"{r.Format} {r.Generator}";
            int i = series.FindIndex(x => x.Name == name);
            if (i < 0)
            {
                series.Add((name, []));
                i = series.Count - 1;
            }
            series[i].Rows.Add(r);
        }
        foreach (var (_, list) in series)
        {
            list.Sort((a, b) => ((long)a.Width * a.Height).CompareTo((long)b.Width * b.Height));
        }
        return series;
    }
}
