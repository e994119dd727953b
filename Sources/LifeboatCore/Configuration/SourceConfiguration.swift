/// The configuration of a policy's `source:`, as one source kind reads it.
///
/// Each source kind (PostgreSQL, files, …) lives in a folder of its own in the engine: its
/// configuration model and parser, backup, restore and manifest record. The core knows only
/// this protocol, so adding a kind adds a folder and touches no shared switch.
public protocol SourceConfiguration: Sendable {
    /// The key under `source:` that selects the kind, and `source.kind` in manifests.
    var kind: String { get }
    /// Secrets the configuration holds (passwords in a conninfo), registered with `Secrets` so
    /// that nothing Lifeboat prints ever shows them.
    var secrets: [String] { get }
    /// The keys of a runbook's restore `target:` this source can be restored to (`path`,
    /// `conninfo`, `data_dir`: see `RestoreTarget.Location.runbookKey`).
    var restoreTargetKeys: [String] { get }
}

extension SourceConfiguration {
    public var secrets: [String] { [] }
}

/// How a source kind reads its configuration: `source: { <kind>: … }` in a policy file.
public struct SourceKindParser: Sendable {
    /// The key under `source:`.
    public let kind: String
    /// Reads `source.<kind>`; records every error on the node and returns nil when the
    /// configuration is unusable.
    public let parse: @Sendable (ConfigNode) -> (any SourceConfiguration)?

    public init(kind: String, parse: @escaping @Sendable (ConfigNode) -> (any SourceConfiguration)?) {
        self.kind = kind
        self.parse = parse
    }
}
