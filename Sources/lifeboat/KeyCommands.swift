import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine

/// `lifeboat key`: the master keys of an encrypted repository.
struct KeyCommands: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "List, add and remove the keys that open an encrypted repository (no data is rewritten).",
        subcommands: [KeyList.self, KeyAdd.self, KeyRemove.self])
}

/// Which repository: a configured one by name, or `--repository ADDRESS --key-file F`.
struct KeyRepositoryOptions: ParsableArguments {
    @OptionGroup var global: GlobalOptions
    @OptionGroup var repository: RepositoryOptions
    @Option(name: .customLong("name"), help: ArgumentHelp("The configured repository (default: the default repository).", valueName: "repository"))
    var name: String?

    func config() throws -> RepositoryConfig {
        switch try repository.source(global) {
        case .address(let config):
            return config
        case .configuration(let configuration):
            try configuration.requireMain()
            return try configuration.repository(named: name ?? configuration.defaultRepository)
        }
    }
}

struct KeyList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the keys that open the repository.")
    @OptionGroup var options: KeyRepositoryOptions
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() throws {
        let report = try KeyCommand(context: options.global.context).list(repository: try options.config())
        if json {
            try printJSON(report)
            return
        }
        print("repository \(report.repository) (\(report.location)): key set \(report.keySet), \(plural(report.keys.count, "key"))")
        for key in report.keys {
            print("  \(key.id)  created \(ISO8601DateFormatter().string(from: key.created))\(key.current ? "  (the configured key)" : "")")
        }
    }
}

struct KeyAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Let another key open the repository (key rotation: add the new key, then remove the old).")
    @OptionGroup var options: KeyRepositoryOptions
    @Option(name: .customLong("new-key-file"), help: ArgumentHelp("A file (mode 0600) holding the new key: 32 bytes as 64 hex digits or base64.", valueName: "path"))
    var newKeyFile: String?
    @Option(name: .customLong("new-key-env"), help: ArgumentHelp("An environment variable holding the new key.", valueName: "name"))
    var newKeyEnv: String?
    @Flag(name: .long, help: "Print the added key as JSON.") var json = false

    func run() throws {
        let source: EncryptionConfig.KeySource
        switch (newKeyFile, newKeyEnv) {
        case (let file?, nil): source = .file(absolutePath(file))
        case (nil, let name?): source = .environment(name)
        default: throw LifeboatError(.usage, "give exactly one of --new-key-file and --new-key-env")
        }
        let config = try options.config()
        let key = try KeyCommand(context: options.global.context).add(repository: config, newKey: EncryptionConfig(key: source))
        if json {
            try printJSON(key)
            return
        }
        print("key \(key.id) added to repository \(config.name)")
    }
}

struct KeyRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Stop a key from opening the repository (never the last one).")
    @OptionGroup var options: KeyRepositoryOptions
    @Argument(help: "The key's id ('lifeboat key list').") var id: String
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() throws {
        let config = try options.config()
        try KeyCommand(context: options.global.context).remove(repository: config, id: id)
        if json {
            try printJSON(["repository": config.name, "removed": id])
            return
        }
        print("key \(id) removed from repository \(config.name)")
    }
}

func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}
