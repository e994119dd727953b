// swift-tools-version: 6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Lifeboat",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lifeboat", targets: ["lifeboat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // System libraries. `pkgConfig` finds the headers; the providers tell SwiftPM
        // (and a newcomer) which Debian package to install when they are missing.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        // libcurl's curl_easy_setopt/getinfo are variadic, which Swift cannot call:
        // this small C target exposes typed, prefixed wrappers.
        .target(
            name: "CCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),

        // glibc functions Swift's Glibc module does not declare (they need _GNU_SOURCE).
        .target(name: "CLifeboatSystem"),
        // CRC-32C with the processor's CRC32 instruction (S3's x-amz-checksum-crc32c).
        .target(name: "CLifeboatChecksum"),

        // Pure logic: models, configuration, validation, manifests, errors. No I/O, no C.
        .target(
            name: "LifeboatCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Thin I/O: processes, file descriptors, the local object store.
        .target(
            name: "LifeboatIO",
            dependencies: [
                "LifeboatCore", "CLifeboatSystem",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // HTTP over libcurl: streaming bodies, connection reuse, timeouts, TLS settings.
        .target(
            name: "LifeboatHTTP",
            dependencies: ["LifeboatCore", "CCurl"],
            swiftSettings: strict
        ),
        // The S3 client and the S3 object store (SigV4 signing lives in the core).
        .target(
            name: "LifeboatS3",
            dependencies: [
                "LifeboatCore", "LifeboatHTTP", "LifeboatIO", "CLifeboatChecksum",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Tar archives through libarchive (zstd), streamed, with a SHA-256 per entry.
        .target(
            name: "LifeboatArchive",
            dependencies: [
                "LifeboatCore", "CArchive", "CLifeboatSystem",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // PostgreSQL through libpq and the PostgreSQL client programs.
        .target(
            name: "LifeboatPostgres",
            dependencies: [
                "LifeboatCore", "LifeboatIO", "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Redis: RESP2 over TCP or TLS (libcurl's CONNECT_ONLY), the replication handshake.
        .target(
            name: "LifeboatRedis",
            dependencies: ["LifeboatCore", "CCurl"],
            swiftSettings: strict
        ),
        // Backup, restore, verify: orchestrates the layers above.
        .target(
            name: "LifeboatEngine",
            dependencies: [
                "LifeboatCore", "LifeboatIO", "LifeboatArchive", "LifeboatPostgres", "LifeboatHTTP", "LifeboatS3", "LifeboatRedis",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "lifeboat",
            dependencies: [
                "LifeboatCore", "LifeboatEngine", "LifeboatIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Benchmarks (run by the scripts in Benchmarks/, not by the tests).
        .executableTarget(
            name: "s3-transfer-bench",
            dependencies: [
                "LifeboatCore", "LifeboatHTTP", "LifeboatIO", "LifeboatS3",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/S3Transfer",
            swiftSettings: strict
        ),

        // Real servers on loopback for the tests.
        .target(
            name: "TestSupport",
            dependencies: ["LifeboatCore", "LifeboatIO", "LifeboatPostgres", "CLifeboatSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),

        .testTarget(
            name: "LifeboatCoreTests",
            // TestSupport: the seeded fuzzer (Fuzz.swift); no server is started by these tests.
            dependencies: ["LifeboatCore", "TestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LifeboatEngineTests",
            dependencies: [
                "LifeboatCore", "LifeboatArchive", "LifeboatEngine", "LifeboatIO", "LifeboatRedis", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LifeboatHTTPTests",
            dependencies: ["LifeboatCore", "LifeboatHTTP"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LifeboatArchiveTests",
            // CArchive and Crypto: tests craft hostile archives (and their records) directly.
            dependencies: [
                "LifeboatCore", "LifeboatArchive", "CArchive", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LifeboatIntegrationTests",
            dependencies: [
                "LifeboatCore", "LifeboatIO", "LifeboatArchive", "LifeboatPostgres",
                "LifeboatHTTP", "LifeboatS3", "LifeboatEngine", "TestSupport", "CLifeboatChecksum",
                // Reads the shipped alert rules (deploy/prometheus) to check their metric names.
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
