using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.Sessions;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The pending-event store is bounded against a driver that posts no eventq buffers.</summary>
public class PendingEventsTests
{
    private static byte[] CtrlEvent(uint session, uint ctrlId, int value, uint changes = V4l2Const.EventCtrlChValue)
    {
        var ev = new EventEvent
        {
            Header = new EventHeader { Event = (uint)VirtioMediaEventType.Event, SessionId = session },
            Event = new V4l2Event { Type = V4l2Const.EventCtrl, Id = ctrlId, CtrlValue = value, CtrlChanges = changes },
        };
        byte[] bytes = new byte[VirtioMediaWire.EventEventSize];
        MemoryMarshal.Write(bytes, in ev);
        return bytes;
    }

    private static byte[] SourceChangeEvent(uint session, uint sequence)
    {
        var ev = new EventEvent
        {
            Header = new EventHeader { Event = (uint)VirtioMediaEventType.Event, SessionId = session },
            Event = new V4l2Event { Type = V4l2Const.EventSourceChange, Sequence = sequence },
        };
        byte[] bytes = new byte[VirtioMediaWire.EventEventSize];
        MemoryMarshal.Write(bytes, in ev);
        return bytes;
    }

    private static byte[] Dqbuf(uint session, uint index, uint type = (uint)V4l2BufferType.VideoCapture)
    {
        byte[] bytes = new byte[VirtioMediaWire.EventDqbufSize];
        var ev = new EventDqbuf
        {
            Header = new EventHeader { Event = (uint)VirtioMediaEventType.Dqbuf, SessionId = session },
            Buffer = new V4l2Buffer { Index = index, Type = type },
        };
        MemoryMarshal.Write(bytes, in ev);
        return bytes;
    }

    private static byte[] Take(PendingEvents events)
    {
        byte[] buffer = new byte[VirtioMediaWire.EventMaxSize];
        int n = events.TryDequeue(buffer);
        Assert.True(n > 0);
        return buffer.AsSpan(0, n).ToArray();
    }

    [Fact]
    public void DroppingOneQueuesDqbufsKeepsTheOtherQueuesAndOtherSessions()
    {
        var events = new PendingEvents();
        const uint Output = (uint)V4l2BufferType.VideoOutputMplane, Capture = (uint)V4l2BufferType.VideoCaptureMplane;
        events.Enqueue(1, VirtioMediaEventType.Dqbuf, Dqbuf(1, 0, Output));
        events.Enqueue(1, VirtioMediaEventType.Dqbuf, Dqbuf(1, 1, Capture));
        events.Enqueue(2, VirtioMediaEventType.Dqbuf, Dqbuf(2, 2, Output));
        events.Enqueue(1, VirtioMediaEventType.Event, SourceChangeEvent(1, 0));
        events.Drop(1, VirtioMediaEventType.Dqbuf, Output); // session 1's STREAMOFF(OUTPUT)
        Assert.Equal(3, events.Count);
        Assert.Equal((1u, Capture), (MemoryMarshal.Read<EventDqbuf>(Take(events)).Buffer.Index, Capture));
        Assert.Equal(2u, MemoryMarshal.Read<EventDqbuf>(Take(events)).Buffer.Index);
        Assert.Equal((uint)VirtioMediaEventType.Event, MemoryMarshal.Read<EventHeader>(Take(events)).Event);
    }

    [Fact]
    public void AnEventLargerThanTheDestinationStaysFirstInLine()
    {
        var events = new PendingEvents();
        events.Enqueue(1, VirtioMediaEventType.Dqbuf, Dqbuf(1, 3));
        Assert.Equal(-1, events.TryDequeue(new byte[8]));
        Assert.Equal(1, events.Count);
        Assert.Equal(3u, MemoryMarshal.Read<EventDqbuf>(Take(events)).Buffer.Index);
        Assert.Equal(0, events.Count);
    }

    [Fact]
    public void RepeatedControlEventsCoalesceToTheNewestValueWithMergedChanges()
    {
        var events = new PendingEvents();
        events.Enqueue(1, VirtioMediaEventType.Event, CtrlEvent(1, V4l2Const.CidBrightness, 0, V4l2Const.EventCtrlChFlags));
        for (int i = 1; i <= 100_000; i++)
        {
            events.Enqueue(1, VirtioMediaEventType.Event, CtrlEvent(1, V4l2Const.CidBrightness, i));
        }
        events.Enqueue(2, VirtioMediaEventType.Event, CtrlEvent(2, V4l2Const.CidBrightness, 7));
        Assert.Equal(2, events.Count);
        Assert.Equal(0, events.DroppedCount);
        EventEvent first = MemoryMarshal.Read<EventEvent>(Take(events));
        Assert.Equal(1u, first.Header.SessionId);
        Assert.Equal(100_000, first.Event.CtrlValue);
        Assert.Equal(V4l2Const.EventCtrlChValue | V4l2Const.EventCtrlChFlags, first.Event.CtrlChanges);
        Assert.Equal(7, MemoryMarshal.Read<EventEvent>(Take(events)).Event.CtrlValue);
        Assert.Equal(0, events.Count);
        Assert.Equal(0, events.Bytes);
    }

    [Fact]
    public void CoalescedControlEventMovesBehindLaterEvents()
    {
        var events = new PendingEvents();
        events.Enqueue(1, VirtioMediaEventType.Event, CtrlEvent(1, V4l2Const.CidBrightness, 1));
        events.Enqueue(1, VirtioMediaEventType.Dqbuf, Dqbuf(1, 3));
        events.Enqueue(1, VirtioMediaEventType.Event, CtrlEvent(1, V4l2Const.CidBrightness, 2));
        Assert.Equal((uint)VirtioMediaEventType.Dqbuf, MemoryMarshal.Read<EventHeader>(Take(events)).Event);
        Assert.Equal(2, MemoryMarshal.Read<EventEvent>(Take(events)).Event.CtrlValue);
    }

    [Fact]
    public void DistinctEventsAreCappedByCountDroppingTheOldest()
    {
        var events = new PendingEvents(maxEvents: 8, maxBytes: 1 << 20);
        for (uint i = 0; i < 100; i++)
        {
            Assert.True(events.Enqueue(1, VirtioMediaEventType.Event, SourceChangeEvent(1, i)));
        }
        Assert.Equal(8, events.Count);
        Assert.Equal(92, events.DroppedCount);
        for (uint i = 92; i < 100; i++)
        {
            Assert.Equal(i, MemoryMarshal.Read<EventEvent>(Take(events)).Event.Sequence);
        }
    }

    [Fact]
    public void DefaultCapBoundsManySessionsTimesManyControls()
    {
        var events = new PendingEvents();
        for (uint session = 1; session <= 256; session++)
        {
            for (uint ctrl = 0; ctrl < 64; ctrl++)
            {
                events.Enqueue(session, VirtioMediaEventType.Event, CtrlEvent(session, V4l2Const.CidBrightness + ctrl, 1));
            }
        }
        Assert.Equal(PendingEvents.DefaultMaxEvents, events.Count);
        Assert.Equal(256 * 64 - PendingEvents.DefaultMaxEvents, events.DroppedCount);
        Assert.True(events.Bytes <= PendingEvents.DefaultMaxBytes);
    }

    [Fact]
    public void ByteCapHolds()
    {
        var events = new PendingEvents(maxEvents: 1000, maxBytes: 5 * VirtioMediaWire.EventEventSize);
        for (uint i = 0; i < 50; i++)
        {
            events.Enqueue(1, VirtioMediaEventType.Event, SourceChangeEvent(1, i));
        }
        Assert.Equal(5, events.Count);
        Assert.Equal(5 * VirtioMediaWire.EventEventSize, events.Bytes);
    }

    [Fact]
    public void DqbufEventsAreNeverDroppedForRoomButRefusedWhenTheCapIsFullOfThem()
    {
        var events = new PendingEvents(maxEvents: 4, maxBytes: 1 << 20);
        events.Enqueue(1, VirtioMediaEventType.Event, SourceChangeEvent(1, 0));
        events.Enqueue(1, VirtioMediaEventType.Event, SourceChangeEvent(1, 1));
        for (uint i = 0; i < 4; i++)
        {
            Assert.True(events.Enqueue(2, VirtioMediaEventType.Dqbuf, Dqbuf(2, i)));
        }
        // The V4L2 events made room; a V4L2 event arriving now is dropped, not a DQBUF.
        Assert.True(events.Enqueue(1, VirtioMediaEventType.Event, SourceChangeEvent(1, 2)));
        Assert.False(events.Enqueue(3, VirtioMediaEventType.Dqbuf, Dqbuf(3, 0)));
        Assert.Equal(4, events.Count);
        Assert.Equal(4, events.DroppedCount);
        for (uint i = 0; i < 4; i++)
        {
            EventDqbuf d = MemoryMarshal.Read<EventDqbuf>(Take(events));
            Assert.Equal(2u, d.Header.SessionId);
            Assert.Equal(i, d.Buffer.Index);
        }
    }

    [Fact]
    public void RefusedDqbufFailsTheSessionWithAnErrorEvent()
    {
        var events = new PendingEvents(maxEvents: 2, maxBytes: 1 << 20);
        var other = new MediaSession(1, events, null, () => null, _ => { });
        var victim = new MediaSession(2, events, null, () => null, _ => { });
        other.SendDqbuf(new V4l2Buffer { Index = 0 }, []);
        other.SendDqbuf(new V4l2Buffer { Index = 1 }, []);
        victim.SendDqbuf(new V4l2Buffer { Index = 0 }, []);
        Assert.True(victim.Failed);
        Assert.False(other.Failed);
        Assert.Equal(3, events.Count);
        Take(events);
        Take(events);
        EventError error = MemoryMarshal.Read<EventError>(Take(events));
        Assert.Equal((uint)VirtioMediaEventType.Error, error.Header.Event);
        Assert.Equal(2u, error.Header.SessionId);
    }

    [Fact]
    public void DropRemovesOnlyThatSessionsEventsAndKeepsAccounting()
    {
        var events = new PendingEvents();
        events.Enqueue(1, VirtioMediaEventType.Dqbuf, Dqbuf(1, 0));
        events.Enqueue(2, VirtioMediaEventType.Event, CtrlEvent(2, V4l2Const.CidBrightness, 5));
        events.Enqueue(1, VirtioMediaEventType.Event, CtrlEvent(1, V4l2Const.CidBrightness, 6));
        events.Enqueue(2, VirtioMediaEventType.Dqbuf, Dqbuf(2, 1));
        events.Drop(1, VirtioMediaEventType.Dqbuf);
        Assert.Equal(3, events.Count);
        events.Drop(2, null);
        Assert.Equal(1, events.Count);
        // The dropped control event's coalescing slot is gone too: a new one is queued, not merged into nothing.
        events.Enqueue(2, VirtioMediaEventType.Event, CtrlEvent(2, V4l2Const.CidBrightness, 9));
        Assert.Equal(2, events.Count);
        Assert.Equal(6, MemoryMarshal.Read<EventEvent>(Take(events)).Event.CtrlValue);
        Assert.Equal(9, MemoryMarshal.Read<EventEvent>(Take(events)).Event.CtrlValue);
        Assert.Equal(0, events.Bytes);
    }
}
