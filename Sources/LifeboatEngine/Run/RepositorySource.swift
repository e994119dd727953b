import Foundation
import LifeboatCore

/// Where a command finds backups: the policies of a configuration directory, or a repository
/// given by its address alone (`--repository`), for the machine that has nothing else.
public enum RepositorySource: Sendable {
    case configuration(Configuration)
    case address(RepositoryConfig)

    /// Whether the repository was given by its address alone.
    public var isAddress: Bool {
        if case .address = self { return true }
        return false
    }

    /// The repository holding `policy`'s backups, and the policy when a configuration is at
    /// hand. Problems elsewhere in the configuration are logged as warnings, not obstacles.
    public func repository(forPolicy name: String, context: RunContext) throws -> (Repository, Policy?) {
        switch self {
        case .configuration(let configuration):
            let policy = try configuration.policyForCommand(named: name, context: context)
            return (try Repository.open(try configuration.repository(for: policy), context: context), policy)
        case .address(let config):
            return (try Repository.open(config, context: context), nil)
        }
    }

    /// What `verify` and `restore` share: the policy's repository, a shared lock on it (none
    /// with a nil `lockWait`), and the committed backup `selector` names; `body` gets them
    /// with a context whose log lines carry the backup's id.
    /// `at`: the newest backup started at or before that time instead of `selector` (`restore --at`).
    func withBackup<T>(policy name: String, selector: String, at: Date? = nil, command: String, lockWait: TimeInterval?,
                       context: RunContext, _ body: (Repository, Policy?, Manifest, RunContext) throws -> T) throws -> T {
        var context = context.with(metadata: "policy.name", name)
        if case .configuration(let configuration) = self { context = context.temporaryFiles(of: configuration) }
        let (repository, policy) = try repository(forPolicy: name, context: context)
        try repository.requireFormat()
        return try repository.withSharedLock(command: "\(command) \(name)", wait: lockWait, context: context) {
            let warn: (String) -> Void = { context.logger.warning("\($0)") }
            let manifest = try at.map { try repository.resolve(policy: name, at: $0, warn: warn) }
                ?? repository.resolve(policy: name, selector: selector, warn: warn)
            return try body(repository, policy, manifest, context.with(metadata: "backup.id", manifest.id))
        }
    }
}

extension Configuration {
    /// The policies a command over every policy works on (`usablePolicies`), after the
    /// problems of `lifeboat.yaml` itself (which stop it); every other problem is logged as a
    /// warning, a policy left out as "policy 'x' is not <participle>".
    public func usablePoliciesForCommand(_ participle: String, context: RunContext) throws -> [Policy] {
        try requireMain()
        let usable = usablePolicies
        let usableNames = Set(usable.map(\.name))
        for problem in problems where problem.scope != .main {
            if case .policy(let policy) = problem.scope, !usableNames.contains(policy) {
                context.logger.warning("policy '\(policy)' is not \(participle): \(problem.error.message)")
            } else {
                context.logger.warning("configuration problem ('lifeboat check' lists them all): \(problem.error.message)")
            }
        }
        return usable
    }

    /// `policies` grouped by the repository each writes to, repositories in order of first use.
    public func byRepository(_ policies: [Policy]) throws -> [(RepositoryConfig, [Policy])] {
        var groups: [(RepositoryConfig, [Policy])] = []
        for policy in policies {
            let config = try repository(for: policy)
            if let index = groups.firstIndex(where: { $0.0.name == config.name }) {
                groups[index].1.append(policy)
            } else {
                groups.append((config, [policy]))
            }
        }
        return groups
    }

    /// A policy ready for a command (see `policy(named:)`), with the problems in the rest of
    /// the configuration logged as warnings: they do not stop this command, but someone should
    /// fix them (`lifeboat check` lists them all).
    public func policyForCommand(named name: String, context: RunContext) throws -> Policy {
        let policy = try self.policy(named: name)
        for problem in problems(outside: scopes(forPolicy: name)) {
            context.logger.warning("configuration problem (not used by this command; 'lifeboat check' lists them all): \(problem.error.message)",
                                   metadata: ["config.scope": "\(problem.scope)", "policy.name": "\(name)"])
        }
        return policy
    }
}
