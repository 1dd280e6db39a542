// swift-tools-version:6.0
import PackageDescription

// Arrows (see Docs/ARCHITECTURE.md):
//   snapctl -> StrataCompactor, StrataProducer, StrataS3, StrataFileStore
//   StrataCompactor, StrataProducer -> StrataDelta, StrataBundle -> StrataCore
//   StrataS3 -> CCurl, StrataCrypto;  StrataFileStore -> StrataCrypto;  StrataCrypto -> COpenSSL
// Protocol logic (producer, compactor) only sees the ObjectStore protocol in StrataCore.

let package = Package(
    name: "Strata",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "snapctl", targets: ["snapctl"]),
        .library(name: "StrataCore", targets: ["StrataCore"]),
        .library(name: "StrataS3", targets: ["StrataS3"]),
        .library(name: "StrataProducer", targets: ["StrataProducer"]),
        .library(name: "StrataFileStore", targets: ["StrataFileStore"]),
        .library(name: "StrataEmbed", targets: ["StrataEmbed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries from Debian packages, each behind a system-library target with a thin shim.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(name: "StrataCore", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "StrataCrypto", dependencies: ["COpenSSL"]),
        .target(name: "StrataFileStore", dependencies: ["StrataCore", "StrataCrypto"]),
        .target(name: "StrataS3",
                dependencies: ["StrataCore", "StrataCrypto", "CCurl", .product(name: "Logging", package: "swift-log")]),
        .target(name: "StrataBundle", dependencies: ["StrataCore", "StrataCrypto", "CArchive"]),
        .target(name: "StrataDelta", dependencies: ["StrataCore", "CSQLite"]),
        // Page patches (Docs/design/0002-page-patch-versions.md): capture, apply, merge, page hashes.
        .target(name: "StrataPages", dependencies: ["StrataCore", "StrataCrypto", "StrataDelta", "CSQLite", "CZlib"]),
        // The OpenAI-compatible embeddings client (over StrataS3's libcurl HTTP client) and its spool.
        .target(name: "StrataEmbed", dependencies: ["StrataCore", "StrataCrypto", "StrataS3"]),
        .target(name: "StrataProducer",
                dependencies: ["StrataCore", "StrataCrypto", "StrataDelta", "StrataBundle", "StrataEmbed",
                               .product(name: "Logging", package: "swift-log")]),
        .target(name: "StrataCompactor",
                dependencies: ["StrataCore", "StrataCrypto", "StrataDelta", "StrataBundle", "StrataPages",
                               .product(name: "Logging", package: "swift-log")]),
        .target(name: "StrataInspect",
                dependencies: ["StrataCore", "StrataCrypto", "StrataDelta", "StrataCompactor", "StrataPages",
                               .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "snapctl",
                          dependencies: ["StrataCore", "StrataS3", "StrataFileStore", "StrataProducer",
                                         "StrataCompactor", "StrataInspect", "StrataEmbed", "StrataService", "StrataPages",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log")]),
        // The compactor as a long-running service: metrics, health, lifecycle, many workers.
        .target(name: "StrataService",
                dependencies: ["StrataCore", "StrataCompactor",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "Metrics", package: "swift-metrics"),
                               .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "FlyingFox", package: "FlyingFox"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),

        .executableTarget(name: "strata-pages-bench",
                          dependencies: ["StrataPages", "StrataDelta", "StrataCrypto", "CSQLite"]),

        // Test support: starts and stops a private SeaweedFS on loopback.
        .target(name: "StrataTestSupport",
                dependencies: ["StrataCore", "StrataS3", "StrataFileStore", "StrataDelta", "StrataProducer",
                               "StrataCompactor", "StrataEmbed", "StrataInspect"],
                path: "Tests/StrataTestSupport"),
        .testTarget(name: "StrataCoreTests", dependencies: ["StrataCore", "StrataCrypto"]),
        .testTarget(name: "StrataS3Tests", dependencies: ["StrataS3", "StrataTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "StrataStoreTests",
                    dependencies: ["StrataCore", "StrataS3", "StrataFileStore", "StrataTestSupport"]),
        .testTarget(name: "StrataBundleTests", dependencies: ["StrataBundle", "StrataTestSupport"]),
        .testTarget(name: "StrataDeltaTests", dependencies: ["StrataDelta", "StrataTestSupport"]),
        .testTarget(name: "StrataPagesTests", dependencies: ["StrataPages", "StrataTestSupport"]),
        .testTarget(name: "StrataProducerTests",
                    dependencies: ["StrataProducer", "StrataFileStore", "StrataS3", "StrataTestSupport"]),
        .testTarget(name: "StrataCompactorTests",
                    dependencies: ["StrataCompactor", "StrataProducer", "StrataFileStore", "StrataS3",
                                   "StrataInspect", "StrataTestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "StrataInspectTests",
                    dependencies: ["StrataInspect", "StrataCompactor", "StrataProducer", "StrataFileStore", "StrataS3",
                                   "StrataTestSupport", "StrataPages", "StrataDelta", "StrataCrypto"]),
        .testTarget(name: "SnapctlTests", dependencies: ["StrataTestSupport"]),
        .testTarget(name: "StrataEmbedTests",
                    dependencies: ["StrataEmbed", "StrataProducer", "StrataFileStore", "StrataCompactor", "StrataDelta",
                                   "StrataTestSupport"]),
        .testTarget(name: "StrataServiceTests",
                    dependencies: ["StrataService", "StrataCompactor", "StrataProducer", "StrataS3", "StrataFileStore",
                                   "StrataTestSupport", .product(name: "Logging", package: "swift-log")]),
    ]
)
