import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import Logging

/// Re-reads every artifact of a backup through libarchive and recomputes every SHA-256.
public struct VerifyCommand {
    public let source: RepositorySource
    public let context: RunContext
    /// How long to wait for a conflicting lock; nil takes no lock (read-only credentials).
    public var lockWait: TimeInterval?
    /// `--read-data`, `--read-data-subset`.
    public var options: VerifyOptions

    public init(source: RepositorySource, context: RunContext, lockWait: TimeInterval? = 600, options: VerifyOptions = VerifyOptions()) {
        self.source = source
        self.context = context
        self.lockWait = lockWait
        self.options = options
    }

    public struct Report: Sendable, Encodable {
        public var policy: String
        public var backup: String
        public var artifacts: Int
        public var entries: Int
        public var bytes: Int64
        public var problems: [Problem]
        public var ok: Bool { problems.isEmpty }

        public struct Problem: Sendable, Encodable, Equatable {
            public var artifact: String
            public var entry: String?
            public var message: String
        }

        enum CodingKeys: String, CodingKey { case policy, backup, artifacts, entries, bytes, problems, ok }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(policy, forKey: .policy)
            try c.encode(backup, forKey: .backup)
            try c.encode(artifacts, forKey: .artifacts)
            try c.encode(entries, forKey: .entries)
            try c.encode(bytes, forKey: .bytes)
            try c.encode(problems, forKey: .problems)
            try c.encode(ok, forKey: .ok)
        }
    }

    public func run(policy name: String, selector: String) throws -> Report {
        try source.withBackup(policy: name, selector: selector, command: "verify", lockWait: lockWait, context: context) {
            repository, _, manifest, context in
            do {
                return try verify(manifest, in: repository, context: context)
            } catch let error as LifeboatError where error.code == .cancelled {
                throw LifeboatError(.cancelled, "verify of backup \(manifest.id) of policy '\(name)' was cancelled (\(context.cancellation.reason ?? error.message)); nothing was changed")
            }
        }
    }

    public func verify(_ manifest: Manifest, in repository: Repository, context: RunContext) throws -> Report {
        var report = Report(policy: manifest.policy, backup: manifest.id, artifacts: manifest.artifacts.count,
                            entries: manifest.artifacts.reduce(0) { $0 + $1.entries.count }, bytes: manifest.storedBytes,
                            problems: [])
        for artifact in manifest.artifacts {
            try context.cancellation.checkCancelled()
            let key = Repository.artifactKey(policy: manifest.policy, id: manifest.id, path: artifact.path)
            let problems: [VerificationProblem]
            do {
                let reader = try repository.openArtifact(artifact, of: manifest, context: context, purpose: "verify")
                defer { reader.close() }
                problems = verifyArtifact(artifact, source: reader)
            } catch let error as LifeboatError where error.code == .integrity {
                problems = [VerificationProblem(artifact: artifact.path, entry: nil,
                                                message: "the artifact is missing from the repository (\(repository.locate(key)))")]
            } catch let error as LifeboatError where error.code == .cancelled {
                throw error
            } catch {
                problems = [VerificationProblem(artifact: artifact.path, entry: nil, message: "cannot be read: \(error)")]
            }
            try context.cancellation.checkCancelled()
            for problem in problems {
                context.logger.error("verification failed", metadata: [
                    "artifact.path": "\(problem.artifact)", "entry.path": "\(problem.entry ?? "-")", "problem": "\(problem.message)",
                ])
            }
            if problems.isEmpty {
                context.logger.info("artifact verified", metadata: ["artifact.path": "\(artifact.path)", "artifact.entries": "\(artifact.entries.count)"])
            }
            report.problems += problems.map { Report.Problem(artifact: $0.artifact, entry: $0.entry, message: $0.message) }
        }
        if let kind = try? SourceKinds.named(manifest.source.kind, for: "backup \(manifest.id)") {
            let problems = try kind.verifyDependencies(of: manifest, in: repository, options: options, context: context)
            for problem in problems {
                context.logger.error("verification failed", metadata: ["object": "\(problem.artifact)", "problem": "\(problem.message)"])
            }
            report.problems += problems.map { Report.Problem(artifact: $0.artifact, entry: $0.entry, message: $0.message) }
        }
        return report
    }
}
