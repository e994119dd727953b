import Foundation
import LifeboatCore

/// Where an S3 repository's credentials come from, in order:
/// 1. `access_key_id` and `secret_access_key` (and `session_token`) in its configuration;
/// 2. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`);
/// 3. a profile (`profile`, else `AWS_PROFILE`, else `default`) of the shared credentials file
///    (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`).
public enum S3Credentials {
    public static func resolve(
        repository name: String, config: S3RepositoryConfig, environment: [String: String],
        readFile: (String) throws -> String?
    ) throws -> AWSCredentials {
        switch (config.accessKeyID, config.secretAccessKey) {
        case (let id?, let secret?):
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: config.sessionToken)
        case (.some, nil), (nil, .some):
            throw LifeboatError(.configuration, "repository '\(name)' sets only one of access_key_id and secret_access_key",
                                hint: "Set both (e.g. from ${AWS_ACCESS_KEY_ID} and ${AWS_SECRET_ACCESS_KEY}), or neither to use the environment or a profile.")
        case (nil, nil):
            break
        }
        if let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !id.isEmpty, !secret.isEmpty {
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
        }
        let profile = config.profile ?? environment["AWS_PROFILE"] ?? "default"
        let home = environment["HOME"] ?? NSHomeDirectory()
        let file = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials"
        if let text = try readFile(file), let values = AWSSharedConfigFile.parse(text)[profile],
           let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] {
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"])
        }
        throw LifeboatError(.configuration, "no S3 credentials for repository '\(name)' (s3://\(config.bucket)/\(config.prefix))",
                            hint: "Set access_key_id and secret_access_key for it in lifeboat.yaml (e.g. from ${AWS_ACCESS_KEY_ID}), export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile '\(profile)' to \(file).")
    }
}
