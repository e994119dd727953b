import Foundation
import Testing
import TestSupport

/// TLS certificates are checked unless a repository or an http check says
/// `insecure_skip_tls_verify: true` — and every run that uses it then warns, naming it. The
/// server is a real TLS endpoint on loopback (a certificate of a CA nobody trusts) in front
/// of the S3 test server.
@Suite(.timeLimit(.minutes(5)))
struct TLSVerification {
    @Test func anUntrustedCertificateFailsByDefaultNamingTheEndpointAndTheExplicitSwitchWorksAndWarnsEveryRun() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let dir = try TemporaryDirectory("lifeboat-tls")
            defer { dir.remove() }
            try FileManager.default.createDirectory(atPath: dir.subpath("certs"), withIntermediateDirectories: true)
            let certificates = try TestCertificates.make(in: dir.subpath("certs"))
            let tls = try TLSProxy.start(certificate: certificates.serverCertificate, key: certificates.serverKey, upstreamPort: s3.port)
            defer { tls.stop() }
            try dir.write("lifeboat.yaml", """
                repositories:
                  strict:
                    s3: { endpoint: "\(tls.endpoint)", bucket: lifeboat-test, prefix: strict,
                          access_key_id: "${S3_KEY}", secret_access_key: "${S3_SECRET}" }
                  loose:
                    s3: { endpoint: "\(tls.endpoint)", bucket: lifeboat-test, prefix: loose, insecure_skip_tls_verify: true,
                          access_key_id: "${S3_KEY}", secret_access_key: "${S3_SECRET}" }
                  trusted:
                    s3: { endpoint: "\(tls.endpoint)", bucket: lifeboat-test, prefix: trusted, ca_bundle: certs/ca.crt,
                          access_key_id: "${S3_KEY}", secret_access_key: "${S3_SECRET}" }
                """)
            try dir.write("src/a.txt", "alpha\n")
            for name in ["strict", "loose", "trusted"] {
                try dir.write("policies/\(name).yaml", "policy: \(name)\nrepository: \(name)\nsource: { files: { path: src } }\n")
            }
            let environment = ["S3_KEY": s3.accessKeyID, "S3_SECRET": s3.secretAccessKey]
            let warning = "TLS certificate verification is off for repository 'loose'"

            let strict = try LifeboatCLI.run(["backup", "strict"], config: dir.path, environment: environment)
            #expect(strict.status == 1, "\(strict.all)")
            #expect(strict.stderr.contains(tls.endpoint), "\(strict.stderr)")
            #expect(strict.stderr.lowercased().contains("certificate"), "\(strict.stderr)")
            #expect(strict.stderr.contains("ca_bundle") && strict.stderr.contains("insecure_skip_tls_verify"), "\(strict.stderr)")
            #expect(!strict.stderr.contains(warning))

            let loose = try LifeboatCLI.run(["backup", "loose"], config: dir.path, environment: environment)
            #expect(loose.status == 0, "\(loose.all)")
            #expect(loose.stderr.contains(warning), "\(loose.stderr)")
            let looseList = try LifeboatCLI.run(["list", "loose"], config: dir.path, environment: environment)
            #expect(looseList.status == 0, "\(looseList.all)")
            #expect(looseList.stderr.contains(warning), "every run warns: \(looseList.stderr)")

            let trusted = try LifeboatCLI.run(["backup", "trusted"], config: dir.path, environment: environment)
            #expect(trusted.status == 0, "\(trusted.all)")
            #expect(!trusted.stderr.contains("TLS certificate verification is off"))

            // An http health check: refused by default, passes with the switch (and warns). Any
            // answer of moto's to an unsigned GET (500 today) passes: the handshake is the test.
            for (name, extra) in [("strictcheck", ""), ("loosecheck", ", insecure_skip_tls_verify: true")] {
                try dir.write("runbooks/\(name).yaml", """
                    runbook: \(name)
                    steps:
                      - id: s3-up
                        health:
                          - http: { url: "\(tls.endpoint)/", status: [200, 403, 500]\(extra) }
                        within: 2s
                        interval: 1s
                    """)
            }
            let strictCheck = try LifeboatCLI.run(["recover", "strictcheck", "--yes"], config: dir.path, environment: environment)
            #expect(strictCheck.status == 1, "\(strictCheck.all)")
            #expect(strictCheck.all.contains(tls.endpoint) && strictCheck.all.lowercased().contains("certificate"), "\(strictCheck.all)")
            let looseCheck = try LifeboatCLI.run(["recover", "loosecheck", "--yes"], config: dir.path, environment: environment)
            #expect(looseCheck.status == 0, "\(looseCheck.all)")
            #expect(looseCheck.stderr.contains("TLS certificate verification is off for the http check of \(tls.endpoint)/"), "\(looseCheck.stderr)")
        }
    }
}
