namespace AntHost.Inet.Core.Tcp.Recovery;

/// <summary>What the sender knows about one transmitted segment (RFC 8985 section 5.1's per-segment variables).</summary>
[Flags]
public enum TransmitFlags : byte
{
    None = 0,
    /// <summary>Sent more than once; the time is that of the latest transmission.</summary>
    Retransmitted = 1,
    /// <summary>Selectively acknowledged.</summary>
    Sacked = 2,
    /// <summary>Marked lost and not retransmitted since.</summary>
    Lost = 4,
}

/// <summary>One transmitted range [Start, End) of sequence space, when it was (last) sent, and its state.</summary>
public struct TransmitRecord
{
    public SeqNumber Start;
    public SeqNumber End;
    /// <summary>Microseconds (Instant) of the latest transmission: RFC 8985 Segment.xmit_ts.</summary>
    public long XmitUs;
    /// <summary>The transmission's place in the order of all transmissions (ties of <see cref="XmitUs"/> are common: a burst leaves at one instant).</summary>
    public long Order;
    public TransmitFlags Flags;

    public readonly int Length => End - Start;

    public readonly bool Is(TransmitFlags f) => (Flags & f) != 0;
}

/// <summary>
/// The segments between SND.UNA and SND.MAX, in sequence order, each with its latest
/// transmission time and whether it was retransmitted, SACKed or marked lost: the
/// per-segment state RACK (RFC 8985) keeps where RFC 6675's scoreboard keeps only ranges.
/// </summary>
/// <remarks>
/// An array used as a deque (head index plus count), allocated once per connection and
/// doubled only when more segments are in flight than ever before, so that the steady state
/// allocates nothing. Records are contiguous and sorted by sequence number; a retransmission
/// or a SACK block that covers part of a record splits it, so that each record has one time
/// and one state. The byte totals of SACKed and lost-not-retransmitted octets are kept as the
/// flags change, so that pipe is O(1).
/// </remarks>
public sealed class TransmitLog
{
    private TransmitRecord[] _r;
    private int _head;
    private int _count;
    private long _sackedBytes;
    private long _lostBytes;
    private long _order;

    public TransmitLog(int capacity = 64)
    {
        _r = new TransmitRecord[Math.Max(4, capacity)];
    }

    public int Count => _count;

    /// <summary>SACKed octets above SND.UNA.</summary>
    public long SackedBytes => _sackedBytes;

    /// <summary>Octets marked lost and not retransmitted since.</summary>
    public long LostBytes => _lostBytes;

    /// <summary>The i-th record, lowest sequence first.</summary>
    public ref TransmitRecord this[int i] => ref _r[_head + i];

    /// <summary>One past the highest octet recorded (meaningless when empty).</summary>
    public SeqNumber End => _count > 0 ? _r[_head + _count - 1].End : default;

    /// <summary>Forgets everything.</summary>
    public void Clear()
    {
        _head = 0;
        _count = 0;
        _sackedBytes = 0;
        _lostBytes = 0;
    }

    /// <summary>Forgets the SACK and loss marks (after a retransmission timeout: the receiver may have reneged, RFC 2018 8).</summary>
    public void ClearMarks()
    {
        for (int i = 0; i < _count; i++) _r[_head + i].Flags &= ~(TransmitFlags.Sacked | TransmitFlags.Lost);
        _sackedBytes = 0;
        _lostBytes = 0;
    }

    /// <summary>
    /// [<paramref name="start"/>, <paramref name="end"/>) was sent at <paramref name="nowUs"/>.
    /// The part beyond the highest recorded octet is new; the part below is a retransmission.
    /// </summary>
    public void OnSent(SeqNumber start, SeqNumber end, long nowUs)
    {
        if (!start.IsBefore(end)) return;
        if (_count == 0 || start.IsAfterOrEqual(End))
        {
            Append(_count == 0 ? start : SeqNumber.Max(start, End), end, nowUs);
            return;
        }
        SeqNumber top = End;
        SeqNumber rtxEnd = SeqNumber.Min(end, top);
        if (start.IsBefore(_r[_head].Start)) start = _r[_head].Start;
        if (start.IsBefore(rtxEnd))
        {
            int first = SplitAt(start);
            SplitAt(rtxEnd);
            for (int i = first; i < _count; i++)
            {
                ref var rec = ref _r[_head + i];
                if (!rec.Start.IsBefore(rtxEnd)) break;
                if (rec.Is(TransmitFlags.Lost)) _lostBytes -= rec.Length;
                if (rec.Is(TransmitFlags.Sacked)) _sackedBytes -= rec.Length;
                rec.Flags = TransmitFlags.Retransmitted;
                rec.XmitUs = nowUs;
                rec.Order = ++_order;
            }
        }
        if (end.IsAfter(top)) Append(top, end, nowUs);
    }

    /// <summary>The cumulative ACK reached <paramref name="sndUna"/>: records below go.</summary>
    public void AckTo(SeqNumber sndUna)
    {
        while (_count > 0 && _r[_head].End.IsBeforeOrEqual(sndUna))
        {
            Unmark(ref _r[_head], _r[_head].Length);
            _head++;
            _count--;
        }
        if (_count == 0)
        {
            _head = 0;
            return;
        }
        ref var first = ref _r[_head];
        if (first.Start.IsBefore(sndUna))
        {
            Unmark(ref first, sndUna - first.Start);
            first.Start = sndUna;
        }
    }

    /// <summary>
    /// Splits records so that [<paramref name="left"/>, <paramref name="right"/>) (clipped to
    /// what is recorded) is covered by whole records, and returns their index range [first, last).
    /// </summary>
    public void Cover(SeqNumber left, SeqNumber right, out int first, out int last)
    {
        first = last = 0;
        if (_count == 0) return;
        if (left.IsBefore(_r[_head].Start)) left = _r[_head].Start;
        if (right.IsAfter(End)) right = End;
        if (!left.IsBefore(right)) return;
        first = SplitAt(left);
        SplitAt(right);
        last = first;
        while (last < _count && _r[_head + last].Start.IsBefore(right)) last++;
    }

    /// <summary>Marks record <paramref name="i"/> SACKed; false when it was already.</summary>
    public bool MarkSacked(int i)
    {
        ref var rec = ref _r[_head + i];
        if (rec.Is(TransmitFlags.Sacked)) return false;
        if (rec.Is(TransmitFlags.Lost))
        {
            _lostBytes -= rec.Length;
            rec.Flags &= ~TransmitFlags.Lost;
        }
        rec.Flags |= TransmitFlags.Sacked;
        _sackedBytes += rec.Length;
        return true;
    }

    /// <summary>Marks record <paramref name="i"/> lost (it must be neither SACKed nor marked already).</summary>
    public void MarkLost(int i)
    {
        ref var rec = ref _r[_head + i];
        if (rec.Is(TransmitFlags.Lost | TransmitFlags.Sacked)) return;
        rec.Flags |= TransmitFlags.Lost;
        _lostBytes += rec.Length;
    }

    /// <summary>The index of the lowest record marked lost, or -1.</summary>
    public int FirstLost()
    {
        if (_lostBytes <= 0) return -1;
        for (int i = 0; i < _count; i++)
            if (_r[_head + i].Is(TransmitFlags.Lost)) return i;
        return -1;
    }

    /// <summary>The index of the record holding <paramref name="seq"/>, or -1.</summary>
    public int IndexOf(SeqNumber seq)
    {
        int lo = 0, hi = _count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            ref var rec = ref _r[_head + mid];
            if (seq.IsBefore(rec.Start)) hi = mid - 1;
            else if (seq.IsAfterOrEqual(rec.End)) lo = mid + 1;
            else return mid;
        }
        return -1;
    }

    private void Unmark(ref TransmitRecord rec, int bytes)
    {
        if (rec.Is(TransmitFlags.Sacked)) _sackedBytes -= bytes;
        if (rec.Is(TransmitFlags.Lost)) _lostBytes -= bytes;
    }

    /// <summary>Makes <paramref name="seq"/> the start of a record (when it falls inside one) and returns that record's index (or the count, when beyond).</summary>
    private int SplitAt(SeqNumber seq)
    {
        int i = IndexOf(seq);
        if (i < 0) return seq.IsBefore(_r[_head].Start) ? 0 : _count;
        ref var rec = ref _r[_head + i];
        if (rec.Start == seq) return i;
        Insert(i + 1);
        ref var a = ref _r[_head + i];
        ref var b = ref _r[_head + i + 1];
        b = a;
        b.Start = seq;
        a.End = seq;
        return i + 1;
    }

    private void Append(SeqNumber start, SeqNumber end, long nowUs)
    {
        Insert(_count);
        ref var rec = ref _r[_head + _count - 1];
        rec.Start = start;
        rec.End = end;
        rec.XmitUs = nowUs;
        rec.Order = ++_order;
        rec.Flags = TransmitFlags.None;
    }

    /// <summary>Opens a slot at index <paramref name="at"/> (0..count), moving the records above it up.</summary>
    private void Insert(int at)
    {
        if (_head + _count == _r.Length)
        {
            if (_head > 0)
            {
                Array.Copy(_r, _head, _r, 0, _count);
                _head = 0;
            }
            else
            {
                // More segments in flight than ever before on this connection: grow once.
                Array.Resize(ref _r, _r.Length * 2);
            }
        }
        int abs = _head + at;
        if (at < _count) Array.Copy(_r, abs, _r, abs + 1, _count - at);
        _count++;
    }
}
