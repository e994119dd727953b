import Foundation
import LifeboatCore
import LifeboatIO

/// Reads a configuration directory from disk and parses it with every source kind's parser.
public enum ConfigurationLoader {
    /// The configuration directory: `--config`, else `LIFEBOAT_CONFIG`, else the current directory.
    public static func directory(option: String?, environment: [String: String]) -> String {
        let chosen = option ?? environment["LIFEBOAT_CONFIG"] ?? "."
        let cwd = FileManager.default.currentDirectoryPath
        let path = chosen.hasPrefix("/") ? chosen : cwd + "/" + chosen
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// What to do about a configuration directory that is missing or empty.
    public static let directoryHint = "Pass --config DIR or set LIFEBOAT_CONFIG to the directory holding lifeboat.yaml, policies/ and runbooks/; or give --repository to work from a repository alone."

    /// Loads every file. Problems in the files are in the result's `problems` (each command
    /// decides which of them stop it); this throws only when the directory cannot be read.
    public static func load(directory: String, environment: [String: String]) throws -> Configuration {
        let (main, policies, runbooks) = try files(directory: directory)
        return ConfigurationParser.parse(directory: directory, main: main, policies: policies, runbooks: runbooks,
                                         sources: SourceKinds.parsers, environment: environment)
    }

    /// The configuration directory's files as they are: `lifeboat.yaml` (nil when absent),
    /// `policies/*.yaml`, `runbooks/*.yaml` (also `.yml`).
    ///
    /// - Throws: `.configuration` when the directory does not exist or holds none of them (a
    ///   mistyped `--config`), with `hint` saying what to do.
    public static func files(directory: String, hint: String = directoryHint) throws -> (main: ConfigFile?, policies: [ConfigFile], runbooks: [ConfigFile]) {
        guard isDirectory(directory) else {
            throw LifeboatError(.configuration, "configuration directory '\(directory)' does not exist", hint: hint)
        }
        let mainPath = directory + "/lifeboat.yaml"
        let main = pathExists(mainPath) ? ConfigFile(name: "lifeboat.yaml", text: try readTextFile(mainPath)) : nil
        let policies = try yamlFiles(in: directory, subdirectory: "policies"), runbooks = try yamlFiles(in: directory, subdirectory: "runbooks")
        if main == nil && policies.isEmpty && runbooks.isEmpty {
            throw LifeboatError(.configuration, "'\(directory)' holds no Lifeboat configuration (no lifeboat.yaml, policies/ or runbooks/)", hint: hint)
        }
        return (main, policies, runbooks)
    }

    /// Loads `lifeboat.yaml` and one policy's file (`policies/<policy>.yaml` or `.yml`), and
    /// nothing else: no other policy and no runbook is read, so that a mistake in one of them
    /// cannot stop what runs for this policy alone, once per WAL segment (`wal-push`,
    /// `wal-fetch`). Throws `.notFound` when the policy has no file.
    public static func load(directory: String, environment: [String: String], onlyPolicy policy: String) throws -> Configuration {
        guard isValidName(policy) else {
            throw LifeboatError(.usage, "'\(policy)' is not a policy name",
                                hint: "Policy names use letters, digits, '.', '_' and '-', starting with a letter or digit.")
        }
        guard isDirectory(directory) else {
            throw LifeboatError(.configuration, "configuration directory '\(directory)' does not exist",
                                hint: "Pass --config DIR or set LIFEBOAT_CONFIG to the directory holding lifeboat.yaml and policies/.")
        }
        let mainPath = directory + "/lifeboat.yaml"
        let main = pathExists(mainPath) ? ConfigFile(name: "lifeboat.yaml", text: try readTextFile(mainPath)) : nil
        var policies: [ConfigFile] = []
        for suffix in [".yaml", ".yml"] {
            let file = "policies/\(policy)\(suffix)"
            guard pathExists("\(directory)/\(file)") else { continue }
            do {
                policies.append(ConfigFile(name: file, text: try readTextFile("\(directory)/\(file)")))
            } catch let error as LifeboatError {
                policies.append(ConfigFile(name: file, unreadable: error.message))
            }
        }
        guard !policies.isEmpty else {
            throw LifeboatError(.notFound, "no policy named '\(policy)': neither policies/\(policy).yaml nor policies/\(policy).yml exists in \(directory)",
                                hint: "Check the policy name in the command (archive_command / restore_command) and --config.")
        }
        return ConfigurationParser.parse(directory: directory, main: main, policies: policies, runbooks: [],
                                         sources: SourceKinds.parsers, environment: environment)
    }

    /// The YAML files of `policies/` or `runbooks/`. One that cannot be read is kept as such,
    /// so that it blocks only its own policy or runbook.
    static func yamlFiles(in directory: String, subdirectory: String) throws -> [ConfigFile] {
        try directoryEntries(directory + "/" + subdirectory)
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }
            .map { name in
                let file = "\(subdirectory)/\(name)"
                do {
                    return ConfigFile(name: file, text: try readTextFile("\(directory)/\(file)"))
                } catch let error as LifeboatError {
                    return ConfigFile(name: file, unreadable: error.message)
                }
            }
    }
}
