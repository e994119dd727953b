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
            let policy = try configuration.policy(named: name)
            configuration.warnAboutProblems(outside: configuration.scopes(forPolicy: name), context: context)
            return (try Repository.open(try configuration.repository(for: policy), context: context), policy)
        case .address(let config):
            return (try Repository.open(config, context: context), nil)
        }
    }
}

extension Configuration {
    /// Logs the problems outside `scopes` as warnings: they do not stop this command, but
    /// someone should fix them (`lifeboat check` lists them all).
    public func warnAboutProblems(outside scopes: Set<ConfigScope>, context: RunContext) {
        for problem in problems(outside: scopes) {
            context.logger.warning("configuration problem (not used by this command; 'lifeboat check' lists them all): \(problem.error.message)",
                                   metadata: ["config.scope": "\(problem.scope)"])
        }
    }
}
