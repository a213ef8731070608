namespace AntHost.Client.Tests.Infrastructure;

/// <summary>Where the repository's built programs are (each in its own project's output).</summary>
internal static class Repo
{
    /// <summary>
    /// A program's dll in its own project's output (not this folder's copy: the sandbox brings the
    /// ASP.NET Core shared framework into this test project, which drops packages the programs'
    /// own runtime configurations need).
    /// </summary>
    public static string Dll(string project, string name)
    {
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = tfmDir.Name, config = tfmDir.Parent!.Name;
        for (var d = tfmDir; d is not null; d = d.Parent)
        {
            if (!File.Exists(Path.Combine(d.FullName, "AntHost.slnx"))) continue;
            string path = Path.Combine(d.FullName, project, "bin", config, tfm, name);
            if (File.Exists(path)) return path;
            throw new FileNotFoundException($"{name} is not built in {project}/bin/{config}/{tfm}; build it first", path);
        }
        throw new DirectoryNotFoundException("the repository root (AntHost.slnx) is not above " + AppContext.BaseDirectory);
    }

    /// <summary>The repository's root folder (where AntHost.slnx is).</summary>
    public static string Root
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "AntHost.slnx"))) return d.FullName;
            throw new DirectoryNotFoundException("the repository root (AntHost.slnx) is not above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The configuration this test project was built in (Release or Debug): the repository's other projects were built alike.</summary>
    public static string Configuration => new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;
}
