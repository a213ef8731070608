// The kernel tests' actor: one real process per role, driven by its command
// line, reporting on stdout one line per event ("READY ...", "RESULT ...").
// The tests read those lines; nothing here decides whether a test passes.
using System.Runtime.Versioning;
using AntHost.Kernel.TestActor;

[assembly: SupportedOSPlatform("linux")]

var a = new Args(args);
try
{
    return a.Role switch
    {
        "echo-server" => Roles.EchoServer(a),
        "inet" => Roles.Intermediate(a),
        "nic" => Roles.LastStage(a),
        "hold" => Roles.Hold(a),
        "write-table" => Roles.WriteTable(a),
        "thief" => Roles.Thief(a),
        "strict-touch" => Roles.StrictTouch(a),
        "hostile" => Hostile.Run(a),
        "caller" => Roles.Caller(a),
        "chain-caller" => Roles.ChainCaller(a),
        "channel-churn" => Roles.ChannelChurn(a),
        "busy-server" => Roles.BusyServer(a),
        "busy-driver" => Roles.BusyDriver(a),
        "stale-replier" => Roles.StaleReplier(a),
        "keeper" => Roles.Keeper(a),
        "outsider" => LocalUser.Outsider(a),
        "member" => LocalUser.Member(a),
        _ => Fail($"unknown role '{a.Role}'"),
    };
}
catch (Exception e)
{
    Out.Line($"ERROR {e.GetType().Name}: {e.Message}");
    return 3;
}

static int Fail(string why)
{
    Out.Line("ERROR " + why);
    return 2;
}
