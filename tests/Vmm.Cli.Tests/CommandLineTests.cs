using Vmm.Cli;
using Vmm.Cli.Configuration;
using Vmm.Cli.Diagnostics;

namespace Vmm.Cli.Tests;

public sealed class CommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmm-cli-").FullName;
    private readonly string _kernel;

    public CommandLineTests()
    {
        _kernel = Path.Combine(_dir, "vmlinux");
        File.WriteAllBytes(_kernel, [0x7F, (byte)'E', (byte)'L', (byte)'F']);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Vmm(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = VmmCommandLine.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static string SingleLine(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.DoesNotContain("   at ", text);
        return lines[0];
    }

    [Fact]
    public void Flags_map_to_config()
    {
        VmConfig c = VmmCommandLine.ParseRunConfig("--kernel", _kernel, "--mem", "128", "--cpus", "2", "--cmdline", "quiet",
            "--media", "test-pattern,width=640", "--media", "test-pattern", "--rng", "--console", "virtio", "--boot", "linux64",
            "--log-level", "debug", "--host-profile", "standard");
        Assert.Equal(_kernel, c.KernelPath);
        Assert.Equal(128, c.MemMiB);
        Assert.Equal(2, c.Cpus);
        Assert.Equal("quiet", c.Cmdline);
        Assert.Equal(["test-pattern,width=640", "test-pattern"], c.Media);
        Assert.True(c.Rng);
        Assert.Equal(ConsoleKind.Virtio, c.Console);
        Assert.Equal(BootSelection.Linux64, c.Boot);
        Assert.Equal(LogLevel.Debug, c.LogLevel);
        Assert.Equal(HostProfileChoice.Standard, c.HostProfile);
    }

    [Fact]
    public void Defaults_apply_when_flags_are_absent()
    {
        VmConfig c = VmmCommandLine.ParseRunConfig("-k", _kernel);
        Assert.Equal(VmConfig.DefaultMemMiB, c.MemMiB);
        Assert.Equal(1, c.Cpus);
        Assert.Null(c.Cmdline);
        Assert.Null(c.InitrdPath);
        Assert.False(c.Rng);
        Assert.Equal(BootSelection.Auto, c.Boot);
        Assert.Empty(c.Media);
    }

    [Fact]
    public void Config_file_keys_bind_and_flags_override_them()
    {
        File.WriteAllBytes(Path.Combine(_dir, "initrd.cpio"), [1, 2, 3]);
        string config = Path.Combine(_dir, "vm.json");
        File.WriteAllText(config, """
            { "kernel": "vmlinux", "initrd": "initrd.cpio", "mem": 512, "cpus": 2, "cmdline": "from-file",
              "media": "test-pattern,fps=30", "rng": true, "logLevel": "warn" }
            """);
        VmConfig c = VmmCommandLine.ParseRunConfig("--config", config, "--mem", "64");
        Assert.Equal(_kernel, c.KernelPath);                       // relative to the config file
        Assert.Equal(Path.Combine(_dir, "initrd.cpio"), c.InitrdPath);
        Assert.Equal(64, c.MemMiB);                               // flag wins
        Assert.Equal(2, c.Cpus);
        Assert.Equal("from-file", c.Cmdline);
        Assert.Equal(["test-pattern,fps=30"], c.Media);
        Assert.True(c.Rng);
        Assert.Equal(LogLevel.Warn, c.LogLevel);
    }

    [Fact]
    public void Media_flags_replace_the_config_file_list()
    {
        string config = Path.Combine(_dir, "vm.json");
        File.WriteAllText(config, $$"""{ "kernel": "{{_kernel}}", "media": ["test-pattern,fps=10", "test-pattern,fps=20"] }""");
        Assert.Equal(["test-pattern,fps=30"], VmmCommandLine.ParseRunConfig("--config", config, "--media", "test-pattern,fps=30").Media);
        Assert.Equal(["test-pattern,fps=10", "test-pattern,fps=20"], VmmCommandLine.ParseRunConfig("--config", config).Media);
    }

    [Theory]
    [InlineData("{ \"kernel\": \"x\", \"memory\": 5 }", "unknown key \"memory\"")]
    [InlineData("{ \"kernel\": ", "is not valid JSON")]
    [InlineData("{ \"kernel\": \"vmlinux\", \"mem\": \"lots\" }", "--mem: 'lots' is not a whole number")]
    [InlineData("{ \"kernel\": \"x\", \"rng\": [\"test-pattern\"] }", "\"rng\" must be a single value, not a list or an object")]
    [InlineData("{ \"kernel\": \"x\", \"cpus\": { \"n\": 2 } }", "\"cpus\" must be a single value, not a list or an object")]
    [InlineData("{ \"kernel\": \"x\", \"media\": [{ \"spec\": \"test-pattern\" }] }", "\"media\" must be a string or a list of strings")]
    public void Bad_config_files_get_one_clear_line(string json, string expected)
    {
        string config = Path.Combine(_dir, "bad.json");
        File.WriteAllText(config, json);
        (int code, _, string err) = Vmm("run", "--config", config);
        Assert.Equal(VmmCommandLine.ExitUsage, code);
        Assert.Contains(expected, SingleLine(err));
    }

    [Theory]
    [InlineData(new[] { "run", "--bogus" }, "--bogus")]
    [InlineData(new[] { "frobnicate" }, "frobnicate")]
    [InlineData(new[] { "run", "--mem", "abc", "-k", "K" }, "--mem: 'abc' is not a whole number of MiB")]
    [InlineData(new[] { "run", "--mem", "0", "-k", "K" }, "--mem: 0 is out of range")]
    [InlineData(new[] { "run", "--mem", "-5", "-k", "K" }, "--mem")]
    [InlineData(new[] { "run", "--mem", "99999999999", "-k", "K" }, "--mem")]
    [InlineData(new[] { "run", "--cpus", "0", "-k", "K" }, "--cpus: 0 is out of range")]
    [InlineData(new[] { "run", "--cpus", "two", "-k", "K" }, "--cpus: 'two'")]
    [InlineData(new[] { "run", "--boot", "bios", "-k", "K" }, "--boot: 'bios' is not one of")]
    [InlineData(new[] { "run", "--console", "vga", "-k", "K" }, "--console: 'vga'")]
    [InlineData(new[] { "run", "--log-level", "loud", "-k", "K" }, "--log-level: 'loud'")]
    [InlineData(new[] { "run", "--rng", "maybe", "-k", "K" }, "--rng: 'maybe'")]
    [InlineData(new[] { "run", "--host-profile", "fast", "-k", "K" }, "--host-profile: 'fast'")]
    [InlineData(new[] { "run" }, "no kernel given")]
    [InlineData(new[] { "run", "-k", "K", "--media", "test-pattern,width=641" }, "--media test-pattern,width=641: width 641")]
    [InlineData(new[] { "run", "-k", "K", "--media", "webcam" }, "--media webcam:")]
    [InlineData(new[] { "run", "-k", "K", "--media", "test-pattern,format=ABCD" }, "format")]
    [InlineData(new[] { "run", "-k", "K", "--media", "/dev/video0,bogus=1" }, "unknown key 'bogus' (known: stall, hide, shm")]
    [InlineData(new[] { "run", "-k", "K", "--media", "video0" }, "unknown media backend 'video0'")]
    [InlineData(new[] { "run", "-k", "K", "--media", "test-pattern,max-buffers=0" }, "--media test-pattern,max-buffers=0: max-buffers '0' must be a whole number from 1 to 32")]
    [InlineData(new[] { "run", "-k", "K", "--media", "/dev/video0,max-command=1G" }, "max-command '1G' must be a byte count from 4K to 16M")]
    [InlineData(new[] { "demo", "--firmware", "/nonexistent.elf" }, "firmware payload '/nonexistent.elf' does not exist")]
    [InlineData(new[] { "demo", "--width", "wide" }, "--width: 'wide'")]
    [InlineData(new[] { "demo", "--fps", "500" }, "--fps: 500 is out of range")]
    [InlineData(new[] { "demo", "--dump-every", "10" }, "--dump-every: needs --dump-frames DIR")]
    [InlineData(new[] { "demo", "--dump-frames", "D", "--dump-every", "0" }, "--dump-every: 0 is out of range")]
    [InlineData(new[] { "demo", "--dump-frames", "D", "--dump-every", "often" }, "--dump-every: 'often' is not a whole number of frames")]
    [InlineData(new[] { "demo", "--firmware", "K", "--dump-frames", "K/frames" }, "--dump-frames: cannot write frames to '")]
    [InlineData(new[] { "demo", "--firmware", "K", "--dump-frames", "" }, "--dump-frames: cannot write frames to ''")]
    [InlineData(new[] { "run", "--kernel", "/nonexistent/vmlinux" }, "kernel file '/nonexistent/vmlinux' does not exist")]
    [InlineData(new[] { "run", "--kernel", "/tmp" }, "is a directory")]
    [InlineData(new[] { "run", "-k", "K", "--initrd", "/nonexistent/initrd" }, "initrd file '/nonexistent/initrd' does not exist")]
    [InlineData(new[] { "run", "--config", "/nonexistent.json" }, "config file '/nonexistent.json' does not exist")]
    [InlineData(new string[0], "no command given")]
    public void Bad_input_gets_one_clear_line_and_a_usage_exit_code(string[] args, string expected)
    {
        for (int i = 0; i < args.Length; i++)
        {
            // K: an existing file (the kernel, or a firmware for demo); D: a directory that may be created.
            args[i] = args[i] switch
            {
                "K" => _kernel,
                ['K', '/', ..] => _kernel + args[i][1..],
                "D" => Path.Combine(_dir, "frames"),
                string a => a,
            };
        }
        (int code, _, string err) = Vmm(args);
        Assert.Equal(VmmCommandLine.ExitUsage, code);
        string line = SingleLine(err);
        Assert.StartsWith("vmm: error: ", line);
        Assert.Contains(expected, line);
    }

    [Fact]
    public void Dump_flags_map_to_demo_options()
    {
        Demo.DemoOptions o = VmmCommandLine.ParseDemoOptions("--frames", "120", "--dump-frames", "out/frames", "--dump-every", "7");
        Assert.Equal("out/frames", o.DumpDirectory);
        Assert.Equal(7, o.DumpEvery);
        Assert.Equal(120, o.Frames);
    }

    [Fact]
    public void Dumping_is_off_by_default_and_writes_four_frames_when_asked_without_an_interval()
    {
        Assert.Null(VmmCommandLine.ParseDemoOptions().DumpDirectory);
        Assert.Equal(75, VmmCommandLine.ParseDemoOptions("--dump-frames", "d").DumpEvery);       // 300 frames: 0, 75, 150, 225
        Assert.Equal(25, VmmCommandLine.ParseDemoOptions("--dump-frames", "d", "--frames", "100").DumpEvery);
        Assert.Equal(1, VmmCommandLine.ParseDemoOptions("--dump-frames", "d", "--frames", "2").DumpEvery);
    }

    [Fact]
    public void A_bad_dump_directory_is_refused_before_the_vm_starts()
    {
        // The firmware exists (any file passes that check), so the directory is the first thing that fails; no VM is
        // built, which would need /dev/kvm.
        string blocked = Path.Combine(_kernel, "frames");
        (int code, string output, string err) = Vmm("demo", "--firmware", _kernel, "--dump-frames", blocked);
        Assert.Equal(VmmCommandLine.ExitUsage, code);
        Assert.Equal("", output);
        Assert.StartsWith($"vmm: error: --dump-frames: cannot write frames to '{blocked}': ", SingleLine(err));
    }

    [Fact]
    public void Help_lists_the_dump_flags()
    {
        (int code, string output, _) = Vmm("demo", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--dump-frames", output);
        Assert.Contains("--dump-every", output);
    }

    [Fact]
    public void Unreadable_kernel_is_reported()
    {
        if (Environment.UserName == "root")
        {
            // root reads any file regardless of mode bits; the check is still covered by the directory case.
            Assert.True(File.Exists(_kernel));
            return;
        }
        File.SetUnixFileMode(_kernel, UnixFileMode.None);
        (int code, _, string err) = Vmm("run", "-k", _kernel);
        Assert.Equal(VmmCommandLine.ExitUsage, code);
        Assert.Contains("cannot read kernel file", SingleLine(err));
    }

    [Fact]
    public void Help_lists_every_run_option_like_qemu_and_crosvm_users_expect()
    {
        (int code, string output, _) = Vmm("run", "--help");
        Assert.Equal(0, code);
        foreach (string flag in new[] { "--kernel", "--initrd", "--cmdline", "--mem", "--cpus", "--media", "--rng", "--console", "--config", "--log-level", "--boot", "Ctrl-A X" })
        {
            Assert.Contains(flag, output);
        }
    }
}
