import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what runs the configuration's schedules elsewhere: Kubernetes CronJobs, or systemd units and timers.",
        discussion: "Reads no environment variable and writes no secret: ${VAR} references stay references. Exit status: 0 written; 1 the files could not be written; 2 bad input (configuration, arguments, names that collide).",
        subcommands: [ExportKubernetes.self, ExportSystemd.self])
}

/// `--output`: standard output, or a directory to write one file per object into.
struct ExportOutput: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A directory to write one file per object into (created when missing), or - for standard output.", valueName: "dir"))
    var output: String = "-"

    func write(_ files: [ExportedFile], stream: String, notes: [String]) throws {
        for note in notes { report("note: \(note)") }
        guard output != "-" else {
            print(stream, terminator: "")
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            for file in files {
                try file.text.write(toFile: output + "/" + file.name, atomically: true, encoding: .utf8)
            }
        } catch {
            throw LifeboatError(.io, "cannot write into \(output): \(error.localizedDescription)")
        }
        report("wrote \(files.count) files into \(output)")
        let stale = Self.earlierExports(in: output, besides: Set(files.map(\.name)))
        if !stale.isEmpty {
            report("note: \(output) still holds \(stale.joined(separator: ", ")) from an earlier export, which this one did not write (a policy or runbook removed or renamed since): delete \(stale.count == 1 ? "it" : "them"), or applying the directory brings \(stale.count == 1 ? "it" : "them") back")
        }
    }

    /// The files in `directory` an export wrote (a unit starting with the systemd export's
    /// comment, a manifest with its `managed-by` label) other than `written`.
    static func earlierExports(in directory: String, besides written: Set<String>) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { name in
            guard !written.contains(name) else { return false }
            let unit = name.hasPrefix("lifeboat-") && (name.hasSuffix(".service") || name.hasSuffix(".timer"))
            let manifest = (name.hasPrefix("cronjob-") || name.hasPrefix("configmap-")) && name.hasSuffix(".yaml")
            guard unit || manifest, let text = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8) else { return false }
            return unit ? text.hasPrefix(SystemdExport.header) : text.contains(KubernetesExport.managedByLabel)
        }.sorted()
    }
}

/// The configuration directory's files, parsed without secrets (`ExportConfiguration`).
func exportConfiguration(_ global: GlobalOptions, parseAs directory: String?) throws -> (Configuration, [ConfigFile]) {
    global.bootstrap()
    let path = ConfigurationLoader.directory(option: global.config, environment: global.environment)
    let (main, policies, runbooks) = try ConfigurationLoader.files(
        directory: path, hint: "Pass --config DIR or set LIFEBOAT_CONFIG to the directory holding lifeboat.yaml, policies/ and runbooks/.")
    let configuration = ExportConfiguration.parse(directory: directory ?? path, main: main, policies: policies, runbooks: runbooks,
                                                  sources: SourceKinds.parsers)
    return (configuration, [main].compactMap { $0 } + policies + runbooks)
}

struct ExportKubernetes: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubernetes",
        abstract: "Write a ConfigMap of the configuration and a CronJob per scheduled policy, for prune and per scheduled runbook.",
        discussion: "The pods read ${VAR} values from a Secret (--secret), one key per variable; see the README's 'Running on Kubernetes'.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: ExportOutput
    @Option(name: .long, help: ArgumentHelp("The namespace of every object (default: none, kubectl's current one).", valueName: "name"))
    var namespace: String?
    @Option(name: .long, help: ArgumentHelp("The container image holding the lifeboat executable.", valueName: "image"))
    var image: String = KubernetesExport.defaultImage
    @Option(name: .long, help: ArgumentHelp("The Secret holding the values of the configuration's ${VAR} references.", valueName: "name"))
    var secret: String = "lifeboat"

    func run() throws {
        let (configuration, files) = try exportConfiguration(global, parseAs: KubernetesExport.configMount)
        let result = try KubernetesExport.generate(configuration: configuration, files: files,
                                                   options: KubernetesExport.Options(namespace: namespace, image: image, secretName: secret))
        try output.write(result.files, stream: result.stream, notes: result.notes)
    }
}

struct ExportSystemd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "systemd",
        abstract: "Write lifeboat-scheduler.service, and a oneshot service and timer per scheduled policy, for prune and per scheduled runbook.",
        discussion: "Enable either the scheduler service or the timers; see the README's 'Running with systemd'.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: ExportOutput
    @Option(name: .long, help: ArgumentHelp("The lifeboat executable the units run (default: this one).", valueName: "path"))
    var binary: String?
    @Option(name: .long, help: ArgumentHelp("The user the units run as (default: root).", valueName: "user"))
    var user: String?

    func run() throws {
        let (configuration, _) = try exportConfiguration(global, parseAs: nil)
        let executable = binary ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let result = try SystemdExport.generate(configuration: configuration, options: SystemdExport.Options(binary: executable, user: user))
        try output.write(result.files, stream: result.stream, notes: result.notes)
    }
}
