import Crypto
import Foundation
import LifeboatCore
import LifeboatHTTP
@testable import LifeboatS3
import Logging
import Testing
import TestSupport

func client(_ server: S3TestServer, key: String, secret: String) throws -> S3Client {
    try S3Client(
        configuration: S3Client.Configuration(
            endpoint: server.endpoint, region: server.region, bucket: "lifeboat-test", pathStyle: true,
            credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret),
            retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.01)),
        http: try HTTPClient(), logger: quietLogger)
}

/// The S3 operations against a real server, each for what it promises.
@Suite(.timeLimit(.minutes(10)))
struct S3ClientAgainstAServer {
    @Test func conditionalPutNeverReplacesAnObject() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let store = S3Store(client: try directClient(s3), prefix: "p", logger: quietLogger)
            try store.put(key: "manifest.json", bytes: Array("first".utf8), ifAbsent: true)
            #expect {
                try store.put(key: "manifest.json", bytes: Array("second".utf8), ifAbsent: true)
            } throws: { error in
                "\(error)".contains("412 PreconditionFailed — s3://lifeboat-test/p/manifest.json already exists and is never overwritten")
            }
            #expect(try store.readAll(key: "manifest.json") == Array("first".utf8))
            try store.put(key: "manifest.json", bytes: Array("third".utf8), ifAbsent: false)
            #expect(try store.readAll(key: "manifest.json") == Array("third".utf8))
        }
    }

    @Test func copyObjectCopiesKeysWithAwkwardCharacters() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let client = try directClient(s3)
            let source = "dir/a key+with $pecial&chars=ü.bin"
            try client.putObject(key: source, bytes: Array("payload".utf8))
            try client.copyObject(from: source, to: "copy/b.bin")
            #expect(try client.getObject(key: "copy/b.bin") == Array("payload".utf8))
            #expect(try client.headObject(key: source)?.size == 7)
            #expect(try client.headObject(key: "missing") == nil)
        }
    }

    @Test func virtualHostedAddressingWorksAgainstTheServer() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            // libcurl resolves every *.localhost name to loopback, so `lifeboat-test.localhost`
            // reaches the server, which takes the bucket from the Host header.
            let virtual = try S3Client(
                configuration: S3Client.Configuration(
                    endpoint: "http://localhost:\(s3.port)", region: s3.region, bucket: "lifeboat-test", pathStyle: false,
                    credentials: AWSCredentials(accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey)),
                http: try HTTPClient(), logger: quietLogger)
            #expect(virtual.target(key: "v/x.bin").host == "lifeboat-test.localhost:\(s3.port)")
            try virtual.putObject(key: "v/x.bin", bytes: Array("virtual".utf8))
            #expect(try virtual.listObjects(prefix: "v/").map(\.key) == ["v/x.bin"])
            // The same object, seen through path-style addressing.
            #expect(try directClient(s3).getObject(key: "v/x.bin") == Array("virtual".utf8))
        }
    }

    @Test func anUnknownAccessKeyIsReportedAsSuch() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let unknown = try client(s3, key: "AKIAIOSFODNN7EXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            #expect {
                _ = try unknown.listObjects(prefix: "")
            } throws: { error in
                let error = error as? LifeboatError
                return error?.message.contains("403 InvalidAccessKeyId — access key AKIA…MPLE does not exist at \(s3.endpoint)") == true
                    && error?.hint?.contains("AWS_ACCESS_KEY_ID") == true
            }
        }
    }

    /// Reads an object back whole, through the store's ranged reads.
    func readBack(_ store: S3Store, key: String) throws -> [UInt8] {
        let reader = try store.openReader(key: key)
        defer { reader.close() }
        var read: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
            if n == 0 { break }
            read += buffer[0..<n]
        }
        return read
    }

    @Test func aMultipartUploadFillsAtMostConcurrencyPlusOneBuffersAndStartsAtMostConcurrencyThreads() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let store = S3Store(client: try directClient(s3), prefix: "reuse", partSize: 5 << 20, concurrency: 2, logger: quietLogger)
            let data = pseudoRandomBytes((9 << 20) * 5 / 2 + 12_345)  // 4.5 parts of 5 MiB, twice over
            let writer = try #require(try store.openWriter(key: "big.bin") as? S3ObjectWriter)
            var offset = 0
            while offset < data.count {  // uneven pieces, some larger than a part
                let n = min([777_777, 6 << 20, 3][offset % 3], data.count - offset)
                try data.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
                offset += n
            }
            try writer.commit()
            let used = try #require(writer.partStatistics)
            #expect(used.buffers <= 3, "\(used)")  // concurrency + 1, for 5 parts
            #expect(used.workers <= 2, "\(used)")
            let etag = try #require(try store.client.headObject(key: "reuse/big.bin")?.etag)
            #expect(etag.hasSuffix("-5\""), "\(etag)")
            let read = try readBack(store, key: "big.bin")
            #expect(read.count == data.count)
            #expect(sha256Hex(read) == sha256Hex(data))
        }
    }

    /// Beyond CopyObject's limit (5 GiB on S3; 5 MiB here) a copy goes in parts the server
    /// copies itself; a part that fails aborts the upload and leaves nothing behind.
    @Test func aCopyBeyondTheCopyObjectLimitGoesInPartsAndAFailedOneLeavesNothing() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            var store = S3Store(client: try directClient(s3, endpoint: proxy.endpoint, retry: RetryPolicy(maxAttempts: 1)),
                                prefix: "copy", partSize: 5 << 20, concurrency: 2, logger: quietLogger)
            store.copyLimit = 5 << 20
            store.copyPartSize = 5 << 20
            let data = pseudoRandomBytes((12 << 20) + 7, seed: 7)  // 5 + 5 + 2 MiB
            let writer = try store.openWriter(key: "source.bin")
            try data.withUnsafeBytes { try writer.write($0) }
            try writer.commit()

            try store.copy(from: "source.bin", to: "copied.bin")
            let etag = try #require(try store.client.headObject(key: "copy/copied.bin")?.etag)
            #expect(etag.hasSuffix("-3\""), "a copy in 3 parts, not one CopyObject: \(etag)")
            #expect(sha256Hex(try readBack(store, key: "copied.bin")) == sha256Hex(data))
            let copies = try proxy.requests().filter { $0.method == "PUT" && $0.path.contains("copied.bin") && $0.path.contains("partNumber=") }
            #expect(copies.count == 3, "\(copies)")

            // The second part is refused: the copy fails, names the object, and is aborted.
            try proxy.setRules([.status(403, code: "AccessDenied", match: "failed.bin?partNumber=2")])
            #expect { try store.copy(from: "source.bin", to: "failed.bin") } throws: { error in
                "\(error)".contains("failed.bin") && (error as? LifeboatError)?.code != .notFound
            }
            try proxy.setRules([])
            #expect(try store.stat(key: "failed.bin") == nil)
            #expect(try store.client.listMultipartUploads(prefix: "copy/").isEmpty)

            #expect { try store.copy(from: "missing.bin", to: "other.bin") } throws: { ($0 as? LifeboatError)?.code == .notFound }
        }
    }

    /// A server whose truncated listing page hands back the continuation token it was sent
    /// (a defect some S3-compatibles have had) would have every listing loop on one page
    /// forever: the client refuses the page instead, through every path that lists.
    @Test func aListingThatHandsBackItsOwnTokenIsRefusedRatherThanLoopingForever() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let client = try directClient(s3, endpoint: proxy.endpoint, retry: RetryPolicy(maxAttempts: 1))
            let page = """
                <?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\
                <Name>lifeboat-test</Name><Prefix>loop/</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>\
                <NextContinuationToken>again</NextContinuationToken><Contents><Key>loop/a</Key>\
                <LastModified>2026-11-30T10:00:00.000Z</LastModified><ETag>"x"</ETag><Size>1</Size></Contents></ListBucketResult>
                """
            // Three answers at most: without the check the client would go on to ask moto
            // for the made-up token and fail otherwise, rather than hang the test.
            let rules: [FaultProxy.Rule] = [.answer(page, match: "continuation-token=again", times: 3),
                                            .answer(page, match: "prefix=loop", times: 1)]
            let refused: (any Error) -> Bool = { error in
                (error as? LifeboatError)?.message.contains("NextContinuationToken is the one it was sent: the listing would never end") == true
            }
            try proxy.setRules(rules)
            #expect(performing: { _ = try client.listObjects(prefix: "loop/") }, throws: refused)

            try proxy.setRules(rules)
            let store = S3Store(client: client, prefix: "loop", logger: quietLogger)
            var seen = 0
            #expect(performing: { try store.forEachEntry { _ in seen += 1; return true } }, throws: refused)
            #expect(seen == 1, "the page's one object, once")
        }
    }

    /// A HEAD answer without a Content-Length (a proxy that drops it) must not make an object
    /// of any size read as empty: every path that learns a size from HEAD refuses it.
    @Test func aHeadWithoutAContentLengthIsRefusedRatherThanReadAsEmpty() async throws {
        try await offThePool {
            let (s3, proxy) = try FaultProxy.startInFrontOfS3()
            defer { proxy.stop(); s3.stop() }
            let client = try directClient(s3, endpoint: proxy.endpoint, retry: RetryPolicy(maxAttempts: 1))
            try client.putObject(key: "head/object.bin", bytes: pseudoRandomBytes(1000, seed: 3))
            let headers = ["ETag": "\"0123456789abcdef0123456789abcdef\"", "Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT"]
            let refused: (any Error) -> Bool = { error in
                (error as? LifeboatError)?.message.contains("answered without a Content-Length, so the object's size is unknown") == true
            }
            try proxy.setRules([.answer("", headers: headers, noLength: true, match: "HEAD /lifeboat-test/head/object.bin")])
            #expect(performing: { _ = try client.headObject(key: "head/object.bin") }, throws: refused)
            #expect(performing: { _ = try client.headObjectWithHeaders(key: "head/object.bin") }, throws: refused)
            let store = S3Store(client: client, prefix: "head", logger: quietLogger)
            #expect(performing: { _ = try store.stat(key: "object.bin") }, throws: refused)
            #expect(performing: { _ = try readBack(store, key: "object.bin") }, throws: refused)
            // (A Content-Length that is not a number libcurl refuses itself.)
            try proxy.setRules([])
            #expect(try store.stat(key: "object.bin")?.size == 1000)
        }
    }

    /// Writers side by side (a mirror copying large objects at once) share the store's part
    /// memory: together they never hold more than its limit, none waits for the others in a
    /// circle, every object arrives whole, and all of it is given back.
    @Test func writersSideBySideStayWithinTheStoresPartMemory() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let limit = 12 << 20
            let store = S3Store(client: try directClient(s3), prefix: "budget", partSize: 5 << 20, concurrency: 3,
                                partMemoryLimit: limit, logger: quietLogger)
            let objects = (0..<4).map { pseudoRandomBytes((17 << 20) + $0, seed: UInt64($0 + 1)) }
            for result in together(objects.count, { index in
                let writer = try store.openWriter(key: "object-\(index)")
                var offset = 0
                while offset < objects[index].count {
                    let n = min(1 << 20, objects[index].count - offset)
                    try objects[index].withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
                    offset += n
                }
                try writer.commit()
            }) { try result.get() }
            #expect(store.partMemory.peak <= limit, "\(store.partMemory.peak) > \(limit)")
            #expect(store.partMemory.peak >= 10 << 20, "two writers' buffers at once at least: \(store.partMemory.peak)")
            #expect(store.partMemory.inUse == 0)
            for (index, data) in objects.enumerated() {
                #expect(sha256Hex(try readBack(store, key: "object-\(index)")) == sha256Hex(data))
            }
            // An aborted writer gives its memory back too.
            let writer = try store.openWriter(key: "aborted")
            try objects[0].withUnsafeBytes { try writer.write($0) }
            writer.abort()
            #expect(store.partMemory.inUse == 0)
        }
    }

    /// The composite checksum the server keeps for an upload of 5 + 5 + 2 MiB parts, and the
    /// one we compute: the checksum of the parts' checksums, with the part count.
    private func compositeChecksums(_ checksum: S3Checksum) throws -> (stored: String, ours: String) {
        let s3 = try S3TestServer.start()
        defer { s3.stop() }
        let store = S3Store(client: try directClient(s3, checksum: checksum), prefix: "sum", partSize: 5 << 20, concurrency: 3,
                            logger: quietLogger)
        let data = pseudoRandomBytes((12 << 20) + 7, seed: 42)
        let writer = try store.openWriter(key: "parts.bin")
        try data.withUnsafeBytes { try writer.write($0) }
        try writer.commit()
        let parts = stride(from: 0, to: data.count, by: 5 << 20).map { Array(data[$0..<min($0 + (5 << 20), data.count)]) }
        let ours: String
        let header: String
        switch checksum {
        case .crc32c:
            let concatenated = parts.flatMap { part -> [UInt8] in
                let value = CRC32C.checksum(part)
                return [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
            }
            var composite = CRC32C()
            concatenated.withUnsafeBytes { composite.update($0) }
            (ours, header) = (composite.base64, "x-amz-checksum-crc32c")
        case .sha256:
            let digests = parts.flatMap { Array(SHA256.hash(data: $0)) }
            (ours, header) = (Data(SHA256.hash(data: digests)).base64EncodedString(), "x-amz-checksum-sha256")
        case .md5:
            Issue.record("Content-MD5 declares no composite checksum")
            return ("", "")
        }
        let head = try store.client.send(S3Client.S3Call(
            action: "HeadObject", method: .head, key: "sum/parts.bin", headers: [SigV4Request.Header("x-amz-checksum-mode", "ENABLED")]))
        let stored = try #require(head.headers[header], "\(head.headers)")
        return (stored, ours)
    }

    // The upload declared the algorithm, so the server keeps the checksum of the object made of
    // its parts' checksums, computed from the bytes it received (moto does not refuse a wrong
    // part checksum; AWS does). With the `crc32c` module, moto computes CRC-32C with its own,
    // independent implementation.
    @Test func theServerKeepsTheCompositeCRC32COfTheParts() async throws {
        try await offThePool {
            let (stored, ours) = try compositeChecksums(.crc32c)
            #expect(stored == ours || stored == ours + "-3",
                    "\(stored) != \(ours) (without the Python module crc32c, moto computes CRC-32 under that name)")
        }
    }

    @Test func theServerKeepsTheCompositeSHA256OfTheParts() async throws {
        try await offThePool {
            let (stored, ours) = try compositeChecksums(.sha256)
            #expect(stored == ours || stored == ours + "-3", "\(stored) != \(ours)")
        }
    }

    @Test func eachPartCarriesTheCRC32COfItsBytesAndTheUploadCompletes() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let client = try directClient(s3)
            let upload = try client.createMultipartUpload(key: "listed.bin")
            let first = pseudoRandomBytes(5 << 20, seed: 1), second = pseudoRandomBytes(1000, seed: 2)
            let parts = [try client.uploadPart(key: "listed.bin", uploadID: upload, partNumber: 1, bytes: first),
                         try client.uploadPart(key: "listed.bin", uploadID: upload, partNumber: 2, bytes: second)]
            #expect(parts.map(\.checksum?.name) == ["x-amz-checksum-crc32c", "x-amz-checksum-crc32c"])
            var crc = CRC32C()
            first.withUnsafeBytes { crc.update($0) }
            #expect(parts[0].checksum?.value == crc.base64)
            try client.completeMultipartUpload(key: "listed.bin", uploadID: upload, parts: parts)
            #expect(try client.getObject(key: "listed.bin") == first + second)
        }
    }

    @Test func aMissingPermissionNamesTheActionAndTheObject() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start()
            defer { s3.stop() }
            let reader = try client(s3, key: s3.readerCredentials.accessKeyID, secret: s3.readerCredentials.secretAccessKey)
            #expect(try reader.listObjects(prefix: "").isEmpty)  // reading is allowed
            let masked = AWSCredentials.mask(s3.readerCredentials.accessKeyID)
            #expect {
                try reader.putObject(key: "r/x.bin", bytes: [1, 2, 3])
            } throws: { error in
                let error = error as? LifeboatError
                return error?.message.contains("403 AccessDenied — access key \(masked) may not PutObject on s3://lifeboat-test/r/x.bin") == true
                    && error?.hint == "Grant s3:PutObject on arn:aws:s3:::lifeboat-test/r/x.bin to the user or role of access key \(masked)."
            }
        }
    }
}

/// Error mapping for the cases a test server cannot produce (moto checks no clock skew).
@Suite struct S3ErrorMessages {
    let client: S3Client

    init() throws {
        client = try S3Client(
            configuration: S3Client.Configuration(
                endpoint: "https://s3.eu-central-1.amazonaws.com", region: "eu-central-1", bucket: "acme-dr", pathStyle: false,
                credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret-not-shown")),
            http: try HTTPClient(), logger: quietLogger)
    }

    @Test func clockSkewSaysHowFarApart() async throws {
        try await offThePool {
            let document = try XMLNode.parse("""
                <Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message>
                <RequestTime>20261121T080000Z</RequestTime><ServerTime>2026-11-21T07:40:00Z</ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds></Error>
                """)
            let error = client.mapError(action: "PutObject", method: .put, key: "lifeboat/x", status: 403, error: document, headers: HTTPHeaders())
            #expect(error.message == "S3 PUT s3://acme-dr/lifeboat/x failed: 403 RequestTimeTooSkewed — this machine's clock differs too much from the server's (this machine: 20261121T080000Z, the server: 2026-11-21T07:40:00Z, 1200 s apart)")
            #expect(error.hint?.contains("NTP") == true)
        }
    }

    @Test(arguments: [
        ("NoSuchBucket", "S3 GET s3://acme-dr/k failed: 404 NoSuchBucket — bucket 'acme-dr' does not exist at https://s3.eu-central-1.amazonaws.com"),
        ("SignatureDoesNotMatch", "S3 GET s3://acme-dr/k failed: 404 SignatureDoesNotMatch — the secret key for access key AKIA…MPLE does not match"),
        ("SomethingNew", "S3 GET s3://acme-dr/k failed: 404 SomethingNew: details"),
    ])
    func codesBecomeSentences(code: String, message: String) throws {
        let document = try XMLNode.parse("<Error><Code>\(code)</Code><Message>details</Message></Error>")
        let error = client.mapError(action: "GetObject", method: .get, key: "k", status: 404, error: document, headers: HTTPHeaders())
        #expect(error.message == message)
        #expect(!error.description.contains("secret-not-shown"))
    }

    @Test func anUploadWhoseChecksumTheServerRefusesNamesTheSettingToChange() throws {
        let unsupported = try XMLNode.parse("<Error><Code>InvalidRequest</Code><Message>Checksum algorithm CRC32C is not supported</Message></Error>")
        let refused = client.mapError(action: "CreateMultipartUpload", method: .post, key: "k", status: 400, error: unsupported, headers: HTTPHeaders())
        #expect(refused.message == "S3 POST s3://acme-dr/k failed: 400 InvalidRequest: Checksum algorithm CRC32C is not supported")
        #expect(refused.hint?.contains("x-amz-checksum-crc32c") == true && refused.hint?.contains("'checksum: md5'") == true, "\(refused.hint ?? "")")
        // The same words on a read are not about the upload's checksum.
        let read = client.mapError(action: "GetObject", method: .get, key: "k", status: 400, error: unsupported, headers: HTTPHeaders())
        #expect(read.hint == nil)

        let mismatch = try XMLNode.parse("<Error><Code>BadDigest</Code><Message>The CRC32C you specified did not match the calculated checksum.</Message></Error>")
        let changed = client.mapError(action: "UploadPart", method: .put, key: "k", status: 400, error: mismatch, headers: HTTPHeaders())
        #expect(changed.message.contains("the bytes the server received do not match the checksum they were sent with"), "\(changed.message)")
        #expect(changed.hint?.contains("run again") == true)
    }

    @Test func virtualHostedAddressingPutsTheBucketInTheHost() {
        #expect(client.target(key: "a/b c") == ("/a/b c", "acme-dr.s3.eu-central-1.amazonaws.com"))
        #expect(client.target(key: nil) == ("/", "acme-dr.s3.eu-central-1.amazonaws.com"))
    }

    @Test(arguments: [(503, "", true), (500, "", true), (429, "", true), (408, "", true), (400, "RequestTimeout", true),
                      (503, "SlowDown", true), (403, "AccessDenied", false), (404, "NoSuchKey", false), (412, "PreconditionFailed", false)])
    func whatIsRetried(status: Int, code: String, retried: Bool) {
        #expect(S3Client.isRetryable(status: status, code: code) == retried)
    }

    @Test(arguments: [(1, 8 << 20), (1000, 8 << 20), (1001, 16 << 20), (2001, 32 << 20), (10_000, 4 << 30)])
    func partSizesGrowSoTenThousandPartsHoldAnyObject(part: Int, size: Int) {
        #expect(S3Store.partSize(number: part, base: 8 << 20) == size)
    }
}

@Suite struct S3CredentialSources {
    let config = S3RepositoryConfig(endpoint: "http://minio:9000", region: "us-east-1", bucket: "b", prefix: "",
                                    accessKeyID: nil, secretAccessKey: nil, sessionToken: nil, profile: nil, pathStyle: true, caBundle: nil)

    @Test func theConfigurationComesFirst() async throws {
        try await offThePool {
            var config = config
            config.accessKeyID = "AKIACONFIG"
            config.secretAccessKey = "s1"
            let credentials = try S3Credentials.resolve(repository: "r", config: config,
                                                        environment: ["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s2"]) { _ in nil }
            #expect(credentials.accessKeyID == "AKIACONFIG")
        }
    }

    @Test func thenTheEnvironment() async throws {
        try await offThePool {
            let credentials = try S3Credentials.resolve(repository: "r", config: config,
                                                        environment: ["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s2", "AWS_SESSION_TOKEN": "t"]) { _ in nil }
            #expect(credentials == AWSCredentials(accessKeyID: "AKIAENV", secretAccessKey: "s2", sessionToken: "t"))
        }
    }

    @Test func thenAProfileOfTheSharedCredentialsFile() async throws {
        try await offThePool {
            var config = config
            config.profile = "backup"
            var asked: [String] = []
            let credentials = try S3Credentials.resolve(repository: "r", config: config, environment: ["HOME": "/home/ops"]) { path in
                asked.append(path)
                return "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n[backup]\naws_access_key_id = AKIABACKUP\naws_secret_access_key = b\n"
            }
            #expect(asked == ["/home/ops/.aws/credentials"])
            #expect(credentials.accessKeyID == "AKIABACKUP")
        }
    }

    @Test func noneAnywhereIsAConfigurationErrorSayingWhereToPutThem() {
        #expect {
            _ = try S3Credentials.resolve(repository: "offsite", config: config, environment: ["HOME": "/home/ops"]) { _ in nil }
        } throws: { error in
            let error = error as? LifeboatError
            return error?.code == .configuration && error?.message == "no S3 credentials for repository 'offsite' (s3://b/)"
                && error?.hint?.contains("/home/ops/.aws/credentials") == true
        }
    }
}
