/// How the exports read a configuration directory: without its secrets.
///
/// An export runs where the manifests or units are made, which need not have the secrets,
/// and must never write one. It reads no environment variable: each `${NAME}` without a
/// default reads as the text `${NAME}` itself, and `${NAME:-default}` as its default. What the
/// exports need (schedules, names, timeouts, repository kinds and paths) is then read as it
/// is; a value that must be a number or a known word cannot be a reference without a default.
public enum ExportConfiguration {
    public static func parse(directory: String, main: ConfigFile?, policies: [ConfigFile], runbooks: [ConfigFile],
                             sources: [SourceKindParser]) -> Configuration {
        var environment: [String: String] = [:]
        for file in [main].compactMap({ $0 }) + policies + runbooks {
            for reference in Interpolation.references(inYAML: file.text) ?? [] where !reference.hasDefault {
                environment[reference.name] = "${\(reference.name)}"
            }
        }
        var configuration = ConfigurationParser.parse(directory: directory, main: main, policies: policies, runbooks: runbooks,
                                                      sources: sources, environment: environment)
        // "'${RT}' is not a valid duration" puzzles whoever has RT set: say why it is read so.
        for index in configuration.problems.indices {
            let error = configuration.problems[index].error
            guard let name = environment.keys.sorted().first(where: { error.message.contains("${\($0)}") }) else { continue }
            let why = "lifeboat export reads no environment variable, so ${\(name)} is read as that text, which this setting cannot take: write the value itself, or ${\(name):-VALUE} (the export uses VALUE)."
            configuration.problems[index].error.hint = why + (error.hint.map { " " + $0 } ?? "")
        }
        return configuration
    }
}
