// The servers' console logging (their logs are their standard output, see docs/cli.md):
// "text", one line per entry with a time of day, or "json", one object per line with the
// UTC timestamp, level, category, message and the message template's fields (State). Compiled
// into each server (anthost-kernel, anthost-inet, anthost-nic), not into the library apps link.
using Microsoft.Extensions.Logging;

namespace AntHost.Kernel.Logging;

internal static class ServerLogging
{
    /// <summary>The formats --log-format takes.</summary>
    public static readonly string[] Formats = ["text", "json"];

    /// <summary>Checks a --log-format value; throws <see cref="ArgumentException"/> naming the option.</summary>
    public static string CheckFormat(string value) =>
        Array.IndexOf(Formats, value) >= 0 ? value : throw new ArgumentException($"--log-format takes text or json, not '{value}'");

    public static ILoggingBuilder AddServerConsole(this ILoggingBuilder builder, string format) => format == "json"
        ? builder.AddJsonConsole(o =>
        {
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.ffffffZ";
            o.UseUtcTimestamp = true;
            o.IncludeScopes = false;
            o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        })
        : builder.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
}
