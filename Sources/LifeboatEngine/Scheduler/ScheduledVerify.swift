import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// The scheduler's `verify` job (`scheduler.verify`): verifies the newest committed backup of
/// every policy in turn, as `lifeboat verify POLICY latest` does. One policy's failure does
/// not stop the others; the job fails when any policy's backup failed verification or could
/// not be read, and its error names each of them. A policy with no committed backup yet is
/// passed over (the staleness checks report a policy whose backups are missing).
public struct ScheduledVerify {
    public let configuration: Configuration
    public let context: RunContext
    public let lockWait: TimeInterval

    public init(configuration: Configuration, context: RunContext, lockWait: TimeInterval) {
        self.configuration = configuration
        self.context = context
        self.lockWait = lockWait
    }

    /// - Parameter subset: the part of the S3 mirrors' object contents to re-hash this run, or
    ///   nil to check only that they exist.
    public func run(subset: (part: Int, of: Int)?) throws -> SchedulerDaemon.JobResult {
        var options = VerifyOptions()
        if let subset {
            options.readData = true
            options.subset = subset.of > 1 ? BlobSubset(part: subset.part, of: subset.of) : nil
        }
        var failures: [String] = []
        for policy in configuration.policies.sorted(by: { $0.name < $1.name }) {
            try context.cancellation.checkCancelled()
            let policyContext = context.with(metadata: "policy.name", policy.name)
            do {
                let report = try VerifyCommand(source: .configuration(configuration), context: policyContext, lockWait: lockWait, options: options)
                    .run(policy: policy.name, selector: "latest")
                if report.ok {
                    policyContext.logger.info("backup verified", metadata: [
                        "backup.id": "\(report.backup)", "verify.artifacts": "\(report.artifacts)", "verify.entries": "\(report.entries)",
                        "verify.read_data": "\(options.subset.map(\.description) ?? (options.readData ? "all" : "none"))",
                    ])
                } else {
                    let first = report.problems.first.map { "\($0.artifact)\($0.entry.map { " entry \($0)" } ?? ""): \($0.message)" } ?? ""
                    failures.append("\(policy.name): backup \(report.backup) failed verification (\(report.problems.count) problem(s); first: \(first))")
                    policyContext.logger.error("backup failed verification", metadata: [
                        "backup.id": "\(report.backup)", "verify.problems": "\(report.problems.count)", "error": "\(first)",
                    ])
                }
            } catch let error as LifeboatError where error.code == .cancelled {
                throw error
            } catch let error as LifeboatError where error.code == .notFound {
                policyContext.logger.info("nothing to verify: the policy has no committed backup yet", metadata: ["reason": "\(error.message)"])
            } catch {
                failures.append("\(policy.name): \(error)")
                policyContext.logger.error("backup could not be verified", metadata: ["error": "\(error)"])
            }
        }
        if !failures.isEmpty {
            throw LifeboatError(.integrity, "verify: \(failures.count) of \(configuration.policies.count) policies failed: \(failures.joined(separator: "; "))",
                                hint: "Run 'lifeboat verify POLICY latest' for the whole report; a damaged backup needs a new backup soon ('lifeboat backup POLICY').")
        }
        return SchedulerDaemon.JobResult()
    }
}
