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

    /// Loads every file. Problems in the files are in the result's `problems` (each command
    /// decides which of them stop it); this throws only when the directory cannot be read.
    public static func load(directory: String, environment: [String: String]) throws -> Configuration {
        guard isDirectory(directory) else {
            throw LifeboatError(.configuration, "configuration directory '\(directory)' does not exist",
                                hint: "Pass --config DIR or set LIFEBOAT_CONFIG to the directory holding lifeboat.yaml, policies/ and runbooks/; or give --repository to work from a repository alone.")
        }
        let mainPath = directory + "/lifeboat.yaml"
        let main = pathExists(mainPath) ? ConfigFile(name: "lifeboat.yaml", text: try readTextFile(mainPath)) : nil
        let policies = try yamlFiles(in: directory, subdirectory: "policies")
        let runbooks = try yamlFiles(in: directory, subdirectory: "runbooks")
        if main == nil && policies.isEmpty && runbooks.isEmpty {
            throw LifeboatError(.configuration, "'\(directory)' holds no Lifeboat configuration (no lifeboat.yaml, policies/ or runbooks/)",
                                hint: "Pass --config DIR or set LIFEBOAT_CONFIG to the directory holding lifeboat.yaml, policies/ and runbooks/; or give --repository to work from a repository alone.")
        }
        return ConfigurationParser.parse(directory: directory, main: main, policies: policies, runbooks: runbooks,
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
