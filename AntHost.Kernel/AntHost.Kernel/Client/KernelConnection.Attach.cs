// Joining an instance: before it registers, a process asks the broker for the
// tables file, which comes as a read-only descriptor over the socket (SCM_RIGHTS).
// A process outside the instance's group gets a refusal that says so. And the
// broker's refusals carry a sentence naming the limit or rule (quotas, the
// group), which becomes the exception's message.
using System.Buffers.Binary;
using System.Net.Sockets;
using AntHost.Kernel.Interop;
using AntHost.Kernel.Pool;
using AntHost.Kernel.Protocol;
using Microsoft.Win32.SafeHandles;

namespace AntHost.Kernel;

public sealed partial class KernelConnection
{
    /// <summary>Maps the pool, its tables coming from the broker as a read-only descriptor.</summary>
    private static IcaPool AttachPool(Socket socket, string instance, string poolPath)
    {
        using var tables = ReceiveTables(socket, instance);
        try { return IcaPool.Open(poolPath, tables); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KernelException(KernelError.PoolUnavailable, $"cannot map the pool {poolPath}: {e.Message}");
        }
    }

    /// <summary>Asks the broker for its tables (<see cref="ControlOp.AttachTables"/>) and returns the descriptor it sent.</summary>
    internal static SafeFileHandle ReceiveTables(Socket socket, string instance)
    {
        var w = new FrameWriter();
        w.Begin((int)ControlOp.AttachTables, request: true);
        socket.Send(w.Finish());
        var head = new byte[8];
        int got = UnixAccess.ReceiveWithDescriptor(socket, head, out nint fd, out int errno);
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (got <= 0) throw new KernelException(KernelError.BrokerUnavailable, $"the broker of instance '{instance}' closed the connection (errno {errno})");
            ControlProtocol.ReadExactly(socket, head.AsSpan(got));
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(head) - 4;
            var status = (KernelError)BinaryPrimitives.ReadInt32LittleEndian(head.AsSpan(4));
            if (length is < 0 or > ControlProtocol.MaxFrame) throw new KernelException(KernelError.Malformed, "malformed response from the broker");
            var payload = new byte[length];
            ControlProtocol.ReadExactly(socket, payload);
            if (status != KernelError.None)
                throw new KernelException(status, Refusal(status, payload, length, $"the broker of instance '{instance}' refused this process"));
            if (handle.IsInvalid) throw new KernelException(KernelError.Malformed, "the broker sent no tables descriptor");
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The message for a refusal: the broker's own sentence when its response carries one
    /// (quota and permission refusals name the limit or the group), else <paramref name="what"/>.
    /// </summary>
    internal static string Refusal(KernelError status, byte[] response, int length, string what)
    {
        if (status is KernelError.QuotaExceeded or KernelError.PermissionDenied && length >= 2)
        {
            var r = new FrameReader(response.AsSpan(0, length));
            string why = r.Str();
            if (!r.Failed && why.Length > 0) return $"{what}: {why}";
        }
        return $"{what}: {status}";
    }
}
