import LifeboatCore
import LifeboatIO

extension Repository {
    /// Opens the repository a configuration names.
    public static func open(_ config: RepositoryConfig) throws -> Repository {
        switch config.kind {
        case .local(let path):
            return Repository(name: config.name, store: LocalStore(root: path))
        case .s3(let s3):
            throw LifeboatError(.usage, "repository '\(config.name)' is on S3 (s3://\(s3.bucket)/\(s3.prefix)), which this version of Lifeboat cannot use yet",
                                hint: "Use a local repository ('path:') for now; S3 repositories are being added.")
        }
    }
}
