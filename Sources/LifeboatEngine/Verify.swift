import Foundation
import LifeboatArchive
import LifeboatCore
import Logging

/// Re-reads every artifact of a backup through libarchive and recomputes every SHA-256.
public struct VerifyCommand {
    public let configuration: Configuration
    public let logger: Logger
    public let progress: any ProgressReporter

    public init(configuration: Configuration, logger: Logger, progress: any ProgressReporter = NoProgress()) {
        self.configuration = configuration
        self.logger = logger
        self.progress = progress
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
        let policy = try configuration.policy(named: name)
        var logger = logger
        logger[metadataKey: "policy.name"] = "\(policy.name)"
        let repository = try Repository.open(configuration.repository(for: policy), logger: logger)
        try repository.checkFormat()
        let manifest = try repository.resolve(policy: policy.name, selector: selector)
        return verify(manifest, in: repository)
    }

    public func verify(_ manifest: Manifest, in repository: Repository) -> Report {
        var logger = logger
        logger[metadataKey: "policy.name"] = "\(manifest.policy)"
        logger[metadataKey: "backup.id"] = "\(manifest.id)"
        var report = Report(policy: manifest.policy, backup: manifest.id, artifacts: manifest.artifacts.count,
                            entries: manifest.artifacts.reduce(0) { $0 + $1.entries.count }, bytes: manifest.storedBytes,
                            problems: [])
        for artifact in manifest.artifacts {
            let key = Repository.artifactKey(policy: manifest.policy, id: manifest.id, path: artifact.path)
            let problems: [VerificationProblem]
            do {
                let reader = ProgressReader(try repository.store.openReader(key: key), what: "verify \(artifact.path)",
                                            total: artifact.size, progress: progress)
                defer { reader.close() }
                problems = verifyArtifact(artifact, source: reader)
            } catch let error as LifeboatError where error.code == .notFound {
                problems = [VerificationProblem(artifact: artifact.path, entry: nil,
                                                message: "the artifact is missing from the repository (\(repository.locate(key)))")]
            } catch {
                problems = [VerificationProblem(artifact: artifact.path, entry: nil, message: "cannot be read: \(error)")]
            }
            for problem in problems {
                logger.error("verification failed", metadata: [
                    "artifact.path": "\(problem.artifact)", "entry.path": "\(problem.entry ?? "-")", "problem": "\(problem.message)",
                ])
            }
            if problems.isEmpty {
                logger.info("artifact verified", metadata: ["artifact.path": "\(artifact.path)", "artifact.entries": "\(artifact.entries.count)"])
            }
            report.problems += problems.map { Report.Problem(artifact: $0.artifact, entry: $0.entry, message: $0.message) }
        }
        return report
    }
}
