/// How Lifeboat reaches an S3 service: the keys an S3 repository in `lifeboat.yaml` and an
/// S3 mirror policy's `source.s3` share (endpoint, region, addressing, credentials, CA).
public enum S3Connection {
    public static let keys = ["endpoint", "region", "path_style", "access_key_id", "secret_access_key", "session_token",
                              "profile", "ca_bundle", "insecure_skip_tls_verify", "checksum"]

    /// What `checksum` may be: the header each upload carries (see `S3Checksum`).
    public static let checksums = ["crc32c", "sha256", "md5"]

    /// Reads the connection keys of `map` into an `S3RepositoryConfig` without bucket or
    /// prefix (the caller fills them in). Records every error on its node and returns nil when
    /// one was found. Registers the secret key and session token with `Secrets`.
    public static func parse(_ map: ConfigMapping) -> S3RepositoryConfig? {
        var endpoint = map.required("endpoint")?.string()
        if let given = endpoint, !(given.hasPrefix("http://") || given.hasPrefix("https://")) {
            map["endpoint"]?.error("endpoint '\(given)' must start with http:// or https://")
            endpoint = nil
        }
        let region = map["region"]?.string()
        let accessKeyID = map["access_key_id"]?.string()
        let secretAccessKey = map["secret_access_key"]?.string()
        let sessionToken = map["session_token"]?.string()
        let profile = map["profile"]?.string()
        let pathStyle = map["path_style"]?.bool()
        let caBundle = map["ca_bundle"]?.absolutePath()
        let insecure = map["insecure_skip_tls_verify"]?.bool()
        let checksum = map["checksum"]?.oneOf(checksums)
        // A value that was given but could not be read is an error already reported: do not
        // fall back to a default for it.
        for (key, value) in [("region", region as Any?), ("access_key_id", accessKeyID), ("secret_access_key", secretAccessKey),
                             ("session_token", sessionToken), ("profile", profile), ("path_style", pathStyle),
                             ("ca_bundle", caBundle), ("insecure_skip_tls_verify", insecure), ("checksum", checksum)]
            where map[key] != nil && value == nil {
            return nil
        }
        guard let endpoint else { return nil }
        Secrets.register(secretAccessKey)
        Secrets.register(sessionToken)
        var config = S3RepositoryConfig(
            endpoint: endpoint, region: region ?? "us-east-1", bucket: "", prefix: "", accessKeyID: accessKeyID,
            secretAccessKey: secretAccessKey, sessionToken: sessionToken, profile: profile, pathStyle: pathStyle ?? true,
            caBundle: caBundle, checksum: checksum ?? "crc32c")
        config.insecureSkipTLSVerify = insecure ?? false
        return config
    }
}
