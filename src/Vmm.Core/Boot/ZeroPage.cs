using System.Buffers.Binary;
using Vmm.Core.Arch.X86;
using Vmm.Core.Memory;

namespace Vmm.Core.Boot;

/// <summary>
/// Writes <c>struct boot_params</c> (the "zero page") at <see cref="X86Layout.ZeroPageAddress"/>: the setup header
/// copied from the bzImage when there is one (boot.rst: "the setup header ... should be loaded into struct
/// boot_params"), otherwise a synthesised one (boot flag, "HdrS", version 2.06, LOADED_HIGH, kernel alignment), then
/// the fields a boot loader owns: type_of_loader 0xFF, cmd_line_ptr, ramdisk_image/size, and the e820 table.
/// </summary>
public static class ZeroPage
{
    /// <summary>Version written into a synthesised header: 2.06 is the protocol whose fields we fill (cmdline_size).</summary>
    public const ushort SynthesisedVersion = 0x0206;
    /// <summary>kernel_alignment of a synthesised header: x86_64's CONFIG_PHYSICAL_ALIGN default (16 MiB).</summary>
    public const uint SynthesisedKernelAlignment = 0x100_0000;

    public static void Write(GuestMemory memory, ReadOnlySpan<byte> rawSetupHeader, uint cmdlineSize, ulong cmdlineAddress,
        ulong initrdAddress, ulong initrdSize, ReadOnlySpan<E820Entry> memoryMap, uint? code32Start = null)
    {
        if (memoryMap.Length > BootParamsLayout.E820MaxEntries)
        {
            throw new BootException($"the memory map has {memoryMap.Length} entries; boot_params holds {BootParamsLayout.E820MaxEntries}");
        }
        Span<byte> zp = memory.GetSpan(new GuestAddress(X86Layout.ZeroPageAddress), BootParamsLayout.Size);
        zp.Clear();
        if (!rawSetupHeader.IsEmpty)
        {
            rawSetupHeader.CopyTo(zp[BootParamsLayout.SetupHeader..BootParamsLayout.SetupHeaderLimit]);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(zp[BootParamsLayout.BootFlag..], BootParamsLayout.BootFlagMagic);
            BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.Header..], BootParamsLayout.HeaderMagic);
            BinaryPrimitives.WriteUInt16LittleEndian(zp[BootParamsLayout.Version..], SynthesisedVersion);
            zp[BootParamsLayout.LoadFlags] = BootParamsLayout.LoadedHigh;
            BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.KernelAlignment..], SynthesisedKernelAlignment);
            BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.CmdlineSize..], cmdlineSize);
        }
        zp[BootParamsLayout.TypeOfLoader] = BootParamsLayout.LoaderTypeUndefined;
        if (code32Start is { } c)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.Code32Start..], c);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.CmdLinePtr..], (uint)cmdlineAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.ExtCmdLinePtr..], (uint)(cmdlineAddress >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.RamdiskImage..], (uint)initrdAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.ExtRamdiskImage..], (uint)(initrdAddress >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.RamdiskSize..], (uint)initrdSize);
        BinaryPrimitives.WriteUInt32LittleEndian(zp[BootParamsLayout.ExtRamdiskSize..], (uint)(initrdSize >> 32));
        zp[BootParamsLayout.E820Entries] = (byte)memoryMap.Length;
        for (int i = 0; i < memoryMap.Length; i++)
        {
            Span<byte> e = zp[(BootParamsLayout.E820Table + i * BootParamsLayout.E820EntrySize)..];
            BinaryPrimitives.WriteUInt64LittleEndian(e, memoryMap[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], memoryMap[i].Size);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], (uint)memoryMap[i].Type);
        }
    }
}
