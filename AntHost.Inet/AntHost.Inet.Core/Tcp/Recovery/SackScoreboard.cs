namespace AntHost.Inet.Core.Tcp.Recovery;

/// <summary>What <see cref="SackScoreboard.NextSeg"/> (or <see cref="LossRecovery.NextSegment"/>) says to send.</summary>
public enum SegmentKind : byte
{
    /// <summary>Nothing may be sent now.</summary>
    None,
    /// <summary>
    /// Send from SND.NXT: new data, or, after a retransmission timeout has pulled SND.NXT back,
    /// data again. Up to <see cref="SegmentToSend.Length"/> bytes (the engine caps it by the
    /// MSS, the peer's window, Nagle and the data it has).
    /// </summary>
    Next,
    /// <summary>Retransmit [Seq, Seq + Length): a hole the scoreboard thinks lost (RFC 6675 NextSeg rules 1 and 3).</summary>
    Retransmit,
    /// <summary>The one rescue retransmission per recovery (RFC 6675 NextSeg rule 4): [Seq, Seq + Length).</summary>
    Rescue,
    /// <summary>Retransmit [Seq, Seq + Length): a segment RACK marked lost (RFC 8985 6.2).</summary>
    Lost,
    /// <summary>The tail loss probe (RFC 8985 7.3) retransmitting the highest segment sent: [Seq, Seq + Length).</summary>
    Probe,
}

/// <summary>A segment the loss recovery wants sent.</summary>
public readonly record struct SegmentToSend(SegmentKind Kind, SeqNumber Seq, int Length)
{
    public static SegmentToSend None => default;
}

/// <summary>
/// The sender's SACK scoreboard (RFC 6675 section 3): the octets between HighACK and
/// HighData that the receiver has selectively acknowledged, with RFC 6675's functions over
/// it: Update (<see cref="AddBlock"/> and <see cref="AdvanceTo"/>), <see cref="IsLost"/>,
/// <see cref="NextSeg"/> and <see cref="SetPipe"/>, and the variables HighRxt and RescueRxt.
/// </summary>
/// <remarks>
/// The scoreboard is a sorted array of disjoint, non-adjacent SACKed ranges [Left, Right),
/// allocated once per connection; merging keeps it small (a receiver reports at most three
/// or four blocks per ACK, and every ACK merges). When it is full, the highest range is
/// forgotten: that only makes the sender more conservative (octets it forgets are neither
/// counted as SACKed nor as evidence of loss below them), never wrong.
///
/// Sequence numbers follow the RFC except that ends are exclusive: HighRxt is kept as
/// <see cref="HighRxtEnd"/> = HighRxt + 1, RescueRxt as <see cref="RescueRxtEnd"/>, HighACK
/// is SND.UNA - 1 and HighData is SND.MAX - 1; the callers pass SND.UNA and SND.MAX.
///
/// IsLost follows RFC 6675's definition literally with ranges for "discontiguous SACKed
/// sequences": an unSACKed octet is lost when at least DupThresh separate SACKed ranges lie
/// above it, or more than (DupThresh - 1) * SMSS SACKed bytes do. Both counts only grow as
/// the octet gets lower, so "lost" is "below a boundary", computed once per query in
/// O(ranges) (<see cref="LostBoundary"/>); SetPipe's per-octet loop becomes range
/// arithmetic with the same result.
/// </remarks>
public sealed class SackScoreboard
{
    /// <summary>RFC 6675 section 2: DupThresh = 3.</summary>
    public const int DupThresh = 3;

    private readonly SeqNumber[] _left;
    private readonly SeqNumber[] _right;
    private int _count;
    private long _sackedBytes;
    private bool _newInfo;

    private bool _highRxtValid;
    private SeqNumber _highRxtEnd;
    private bool _rescueValid;
    private SeqNumber _rescueEnd;

    /// <param name="capacity">Most disjoint SACKed ranges remembered.</param>
    public SackScoreboard(int capacity = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _left = new SeqNumber[capacity];
        _right = new SeqNumber[capacity];
    }

    /// <summary>Number of disjoint SACKed ranges held.</summary>
    public int RangeCount => _count;

    /// <summary>The i-th SACKed range, lowest first.</summary>
    public (SeqNumber Left, SeqNumber Right) GetRange(int i)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)i, (uint)_count, nameof(i));
        return (_left[i], _right[i]);
    }

    /// <summary>SACKed bytes above SND.UNA.</summary>
    public long SackedBytes => _sackedBytes;

    /// <summary>True when any octet is SACKed.</summary>
    public bool HasSacks => _count > 0;

    /// <summary>One past the highest SACKed octet (RFC 6675's "highest octet covered by any received SACK" + 1); meaningless when <see cref="HasSacks"/> is false.</summary>
    public SeqNumber HighestSackedEnd => _count > 0 ? _right[_count - 1] : default;

    /// <summary>HighRxt + 1, when <see cref="HighRxtValid"/>.</summary>
    public SeqNumber HighRxtEnd => _highRxtEnd;

    public bool HighRxtValid => _highRxtValid;

    /// <summary>RescueRxt + 1, when <see cref="RescueRxtValid"/>.</summary>
    public SeqNumber RescueRxtEnd => _rescueEnd;

    public bool RescueRxtValid => _rescueValid;

    /// <summary>Forgets everything (RFC 2018 / RFC 6675 5.1: after a retransmission timeout).</summary>
    public void Clear()
    {
        _count = 0;
        _sackedBytes = 0;
        _newInfo = false;
        _highRxtValid = false;
        _rescueValid = false;
    }

    /// <summary>Sets HighRxt so that <paramref name="end"/> is one past it (RFC 6675 (3.1), (4.3), (C.2)).</summary>
    public void SetHighRxt(SeqNumber end)
    {
        _highRxtEnd = end;
        _highRxtValid = true;
    }

    /// <summary>Sets RescueRxt so that <paramref name="end"/> is one past it (RFC 6675 (4.3), NextSeg rule 4).</summary>
    public void SetRescueRxt(SeqNumber end)
    {
        _rescueEnd = end;
        _rescueValid = true;
    }

    /// <summary>
    /// Update(), part 1: records one SACK block [<paramref name="left"/>, <paramref name="right"/>)
    /// of an incoming ACK. Blocks at or below SND.UNA (D-SACK, RFC 2883, or stale), reversed or
    /// empty blocks, and blocks beyond SND.MAX (never sent: a bogus or malicious receiver) are
    /// ignored. Returns true when the block SACKed octets that were not SACKed before.
    /// </summary>
    public bool AddBlock(SeqNumber left, SeqNumber right, SeqNumber sndUna, SeqNumber sndMax)
    {
        if (!left.IsBefore(right) || right.IsBeforeOrEqual(sndUna) || right.IsAfter(sndMax)) return false;
        if (left.IsBefore(sndUna)) left = sndUna;

        // First range that touches or follows [left, right).
        int i = 0;
        while (i < _count && _right[i].IsBefore(left)) i++;
        int j = i;
        long already = 0;
        SeqNumber nl = left, nr = right;
        while (j < _count && _left[j].IsBeforeOrEqual(right))
        {
            SeqNumber ol = SeqNumber.Max(_left[j], left), or = SeqNumber.Min(_right[j], right);
            if (ol.IsBefore(or)) already += or - ol;
            nl = SeqNumber.Min(nl, _left[j]);
            nr = SeqNumber.Max(nr, _right[j]);
            j++;
        }
        long added = (right - left) - already;

        int merged = j - i;
        if (merged == 0)
        {
            if (_count == _left.Length)
            {
                // Full: forget the highest range (or the new one, if it is the highest).
                if (i == _count) return false;
                _count--;
                _sackedBytes -= _right[_count] - _left[_count];
            }
            Array.Copy(_left, i, _left, i + 1, _count - i);
            Array.Copy(_right, i, _right, i + 1, _count - i);
            _count++;
        }
        else if (merged > 1)
        {
            Array.Copy(_left, j, _left, i + 1, _count - j);
            Array.Copy(_right, j, _right, i + 1, _count - j);
            _count -= merged - 1;
        }
        _left[i] = nl;
        _right[i] = nr;
        _sackedBytes += added;
        if (added > 0) _newInfo = true;
        return added > 0;
    }

    /// <summary>Update(), part 2: the cumulative ACK moved to <paramref name="sndUna"/>; ranges below it go.</summary>
    public void AdvanceTo(SeqNumber sndUna)
    {
        int drop = 0;
        while (drop < _count && _right[drop].IsBeforeOrEqual(sndUna))
        {
            _sackedBytes -= _right[drop] - _left[drop];
            drop++;
        }
        if (drop > 0)
        {
            Array.Copy(_left, drop, _left, 0, _count - drop);
            Array.Copy(_right, drop, _right, 0, _count - drop);
            _count -= drop;
        }
        if (_count > 0 && _left[0].IsBefore(sndUna))
        {
            _sackedBytes -= sndUna - _left[0];
            _left[0] = sndUna;
        }
    }

    /// <summary>True (once) when blocks added since the last call SACKed new octets: RFC 6675's test for a duplicate ACK.</summary>
    public bool TakeNewInfo()
    {
        bool n = _newInfo;
        _newInfo = false;
        return n;
    }

    /// <summary>True when <paramref name="seq"/> is SACKed.</summary>
    public bool IsSacked(SeqNumber seq)
    {
        for (int i = 0; i < _count; i++)
        {
            if (seq.IsBefore(_left[i])) return false;
            if (seq.IsBefore(_right[i])) return true;
        }
        return false;
    }

    /// <summary>
    /// The lowest octet that is not lost: every unSACKed octet below it is lost in the sense of
    /// <see cref="IsLost"/>. Equal to <paramref name="sndUna"/> when nothing is lost.
    /// </summary>
    public SeqNumber LostBoundary(SeqNumber sndUna, int smss)
    {
        long bytes = 0;
        long limit = (long)(DupThresh - 1) * smss;
        for (int i = _count - 1, ranges = 1; i >= 0; i--, ranges++)
        {
            bytes += _right[i] - _left[i];
            if (ranges >= DupThresh || bytes > limit) return SeqNumber.Max(_left[i], sndUna);
        }
        return sndUna;
    }

    /// <summary>
    /// RFC 6675 IsLost(SeqNum): true when DupThresh discontiguous SACKed ranges lie above
    /// <paramref name="seq"/>, or more than (DupThresh - 1) * SMSS SACKed bytes do. A SACKed
    /// octet is never lost.
    /// </summary>
    public bool IsLost(SeqNumber seq, int smss)
    {
        long bytes = 0;
        long limit = (long)(DupThresh - 1) * smss;
        int ranges = 0;
        for (int i = _count - 1; i >= 0; i--)
        {
            if (seq.IsAfterOrEqual(_left[i])) return false; // within a range (SACKed) or above all the rest
            ranges++;
            bytes += _right[i] - _left[i];
            if (ranges >= DupThresh || bytes > limit) return true;
        }
        return false;
    }

    /// <summary>
    /// RFC 6675 SetPipe(): the octets between HighACK and HighData still thought to be in the
    /// network. Each unSACKed octet counts once if it is not lost and once more if it is at or
    /// below HighRxt (it was retransmitted).
    /// </summary>
    public long SetPipe(SeqNumber sndUna, SeqNumber sndMax, int smss)
    {
        if (!sndUna.IsBefore(sndMax)) return 0;
        SeqNumber boundary = LostBoundary(sndUna, smss);
        long pipe = Unsacked(boundary, sndMax);
        if (_highRxtValid && _highRxtEnd.IsAfter(sndUna))
            pipe += Unsacked(sndUna, SeqNumber.Min(_highRxtEnd, sndMax));
        return pipe;
    }

    /// <summary>
    /// RFC 6675 NextSeg(): what to send next during loss recovery.
    /// <paramref name="newDataAllowed"/> says whether unsent data exists and the peer's window
    /// allows it (rule 2); <paramref name="recoveryPointEnd"/> is RecoveryPoint + 1 (rule 4 sets
    /// RescueRxt to it); <paramref name="inRecovery"/> allows rule 4.
    /// </summary>
    public SegmentToSend NextSeg(SeqNumber sndUna, SeqNumber sndMax, int smss, bool newDataAllowed, SeqNumber recoveryPointEnd, bool inRecovery)
    {
        SegmentToSend rule3 = default;
        if (_count > 0 && sndUna.IsBefore(sndMax))
        {
            // (1.a) S2 > HighRxt.
            SeqNumber from = _highRxtValid && _highRxtEnd.IsAfter(sndUna) ? _highRxtEnd : sndUna;
            SeqNumber s2 = FirstUnsackedFrom(from, out SeqNumber nextSackedLeft);
            // (1.b) S2 < the highest octet covered by any SACK.
            if (s2.IsBefore(HighestSackedEnd))
            {
                int len = (int)Math.Min(smss, nextSackedLeft - s2);
                // (1.c) IsLost (S2).
                if (s2.IsBefore(LostBoundary(sndUna, smss))) return new SegmentToSend(SegmentKind.Retransmit, s2, len);
                rule3 = new SegmentToSend(SegmentKind.Retransmit, s2, len);
            }
        }
        // (2) New data, if there is any and the receiver's window allows.
        if (newDataAllowed) return new SegmentToSend(SegmentKind.Next, sndMax, smss);
        // (3) Rules 1.a and 1.b without IsLost.
        if (rule3.Kind != SegmentKind.None) return rule3;
        // (4) The rescue retransmission: once per recovery, once HighACK > RescueRxt; it must
        // include the highest outstanding unSACKed octet. HighRxt is not updated.
        if (inRecovery && sndUna.IsBefore(sndMax) && (!_rescueValid || sndUna.IsAfter(_rescueEnd)))
        {
            SeqNumber top = sndMax; // one past the highest unSACKed octet
            SeqNumber floor = sndUna;
            for (int i = _count - 1; i >= 0; i--)
            {
                if (_right[i] == top) { top = _left[i]; continue; }
                floor = _right[i];
                break;
            }
            if (top.IsAfter(sndUna))
            {
                if (floor.IsBefore(sndUna) || floor.IsAfter(top)) floor = sndUna;
                SeqNumber start = SeqNumber.Max(floor, top - smss);
                _rescueEnd = recoveryPointEnd;
                _rescueValid = true;
                return new SegmentToSend(SegmentKind.Rescue, start, top - start);
            }
        }
        return SegmentToSend.None;
    }

    /// <summary>UnSACKed octets in [from, to).</summary>
    public long Unsacked(SeqNumber from, SeqNumber to)
    {
        if (!from.IsBefore(to)) return 0;
        long total = to - from;
        for (int i = 0; i < _count; i++)
        {
            SeqNumber l = SeqNumber.Max(_left[i], from), r = SeqNumber.Min(_right[i], to);
            if (l.IsBefore(r)) total -= r - l;
        }
        return total;
    }

    private SeqNumber FirstUnsackedFrom(SeqNumber from, out SeqNumber nextSackedLeft)
    {
        SeqNumber s = from;
        for (int i = 0; i < _count; i++)
        {
            if (_right[i].IsBeforeOrEqual(s)) continue;
            if (_left[i].IsBeforeOrEqual(s)) { s = _right[i]; continue; }
            nextSackedLeft = _left[i];
            return s;
        }
        nextSackedLeft = s + int.MaxValue;
        return s;
    }
}
