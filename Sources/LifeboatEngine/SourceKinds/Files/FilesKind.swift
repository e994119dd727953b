import Foundation
import LifeboatCore

/// `source: { files: { path, exclude } }`: a directory tree (configuration directories, as
/// in an `/etc/...` tarball), stored as one artifact with what tar stores.
public struct FilesKind: SourceKind {
    public init() {}

    public var name: String { "files" }

    public var parser: SourceKindParser {
        SourceKindParser(kind: name) { node in
            guard let map = node.mapping(allowed: ["path", "exclude"]) else { return nil }
            let exclude = map["exclude"]?.stringList()
            guard let path = map.required("path")?.absolutePath(), map["exclude"] == nil || exclude != nil else { return nil }
            return FilesConfiguration(path: path, exclude: PathPatterns(exclude ?? []))
        }
    }

    public func backup(_ configuration: any SourceConfiguration, into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        try FilesBackup(configuration: try FilesConfiguration.of(configuration)).run(into: sink, context: context)
    }

    public func restoreLocation(commandLine text: String, workingDirectory: String, manifest: Manifest) throws -> RestoreTarget.Location {
        .directory(text.hasPrefix("/") ? text : URL(fileURLWithPath: workingDirectory).appendingPathComponent(text).standardizedFileURL.path)
    }

    public func restore(_ manifest: Manifest, from repository: Repository, to target: RestoreTarget,
                        configuration: (any SourceConfiguration)?, context: RunContext) throws -> RestoreReport {
        try FilesRestore(manifest: manifest, repository: repository, context: context).run(to: target)
    }

    public func leftovers(of target: RestoreTarget) -> String {
        "What the restore had written into \(target.location) was removed; run it again."
    }
}

/// A `files` source's configuration.
public struct FilesConfiguration: SourceConfiguration, Equatable {
    /// Absolute path of the directory tree to back up.
    public var path: String
    /// Paths (relative to `path`) left out of the backup.
    public var exclude: PathPatterns

    public init(path: String, exclude: PathPatterns = PathPatterns([])) {
        self.path = path
        self.exclude = exclude
    }

    public var kind: String { "files" }
    public var restoreTargetKeys: [String] { ["path"] }

}

/// What a `files` backup records in its manifest (`source.files`).
public struct FilesRecord: Codable, Equatable, Sendable {
    /// The directory that was backed up.
    public var path: String
    /// The machine it was backed up on.
    public var hostname: String?
    /// What the backup left out (sockets, files deleted or replaced while it ran); absent
    /// when nothing was.
    public var skipped: [SkippedEntry]?

    public init(path: String, hostname: String?, skipped: [SkippedEntry]? = nil) {
        self.path = path
        self.hostname = hostname
        self.skipped = skipped
    }
}

extension ArtifactRole {
    /// A `files` backup's one artifact: the directory tree.
    public static let files = ArtifactRole("files")
}
