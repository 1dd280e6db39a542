import Foundation
import StrataCore
import XCTest

@testable import StrataS3

/// Region, endpoint, CA bundle and addressing resolution, and the diagnostics text.
final class AWSEnvironmentTests: XCTestCase {
    var home: TempHome!
    var client: LoopbackURLSessionClient!

    override func setUp() {
        home = TempHome()
        client = LoopbackURLSessionClient()
    }

    override func tearDown() {
        XCTAssertEqual(client.refused, [], "a test tried to leave loopback")
        home = nil
    }

    func env(_ vars: [String: String], profile: String? = nil) -> AWSEnvironment {
        AWSEnvironment(
            environment: noIMDS.merging(vars) { $1 }, homeDirectory: home.path, httpClient: client,
            profile: profile)
    }

    func testRegionPrecedence() throws {
        home.config("[default]\nregion = from-profile\n")
        XCTAssertEqual(
            try env(["AWS_REGION": "r1", "AWS_DEFAULT_REGION": "r2"]).settings().region,
            AWSSetting("r1", source: "AWS_REGION"))
        XCTAssertEqual(
            try env(["AWS_DEFAULT_REGION": "r2"]).settings().region,
            AWSSetting("r2", source: "AWS_DEFAULT_REGION"))
        XCTAssertEqual(try env([:]).settings().region.value, "from-profile")
        XCTAssertEqual(try env([:]).settings().region.source, "profile default in \(home.configPath)")
        home.config("[default]\n")
        let s = try env([:]).settings()
        XCTAssertEqual(s.region.value, "us-east-1")
        XCTAssertTrue(s.region.source.contains("default"), s.region.source)
        XCTAssertTrue(s.description.contains("region us-east-1 from the default"), s.description)
    }

    func testEndpointPrecedenceAndPathStyle() throws {
        home.config(
            """
            [profile dev]
            endpoint_url = http://127.0.0.1:1
            services = local
            [services local]
            s3 =
              endpoint_url = http://127.0.0.1:2/
            [profile plain]
            endpoint_url = http://127.0.0.1:3
            """)
        XCTAssertEqual(
            try env(
                ["AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5", "AWS_ENDPOINT_URL": "http://127.0.0.1:4"],
                profile: "dev"
            ).settings().endpoint?.value, "http://127.0.0.1:5")
        XCTAssertEqual(
            try env(["AWS_ENDPOINT_URL": "http://127.0.0.1:4"], profile: "dev").settings().endpoint?.value,
            "http://127.0.0.1:4")
        let dev = try env([:], profile: "dev").settings()
        XCTAssertEqual(dev.endpoint?.value, "http://127.0.0.1:2", "services section, trailing slash dropped")
        XCTAssertTrue(dev.endpoint?.source.contains("[services local]") ?? false)
        XCTAssertEqual(try env([:], profile: "plain").settings().endpoint?.value, "http://127.0.0.1:3")
        XCTAssertNil(try env(["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"], profile: "dev").settings().endpoint)

        let custom = try env([:], profile: "plain").s3Configuration(bucket: "b")
        XCTAssertEqual(custom.endpoint, "http://127.0.0.1:3")
        XCTAssertTrue(custom.usesPathStyle, "path style by default for a custom endpoint")
        home.config("[default]\n")
        let aws = try env([:]).s3Configuration(bucket: "b")
        XCTAssertNil(aws.endpoint)
        XCTAssertFalse(aws.usesPathStyle)
    }

    func testAddressingStyleFromNestedS3Block() throws {
        home.config("[default]\ns3 =\n  addressing_style = virtual\n[profile p]\ns3 =\n  addressing_style = path\n")
        XCTAssertEqual(
            try env(["AWS_ENDPOINT_URL": "http://127.0.0.1:9"]).s3Configuration(bucket: "b").forcePathStyle,
            false)
        XCTAssertEqual(try env([:], profile: "p").s3Configuration(bucket: "b").forcePathStyle, true)
        home.config("[default]\ns3 =\n  addressing_style = sideways\n")
        XCTAssertThrowsError(try env([:]).settings()) { XCTAssertTrue("\($0)".contains("sideways")) }
    }

    func testInvalidEndpointNamesItsSource() {
        XCTAssertThrowsError(try env(["AWS_ENDPOINT_URL": "127.0.0.1:9000"]).settings()) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .configuration)
            XCTAssertTrue("\(error)".contains("AWS_ENDPOINT_URL"), "\(error)")
        }
    }

    func testCABundleMustExist() throws {
        home.write("ca.pem", "-----BEGIN CERTIFICATE-----\n")
        XCTAssertEqual(
            try env(["AWS_CA_BUNDLE": "~/ca.pem"]).s3Configuration(bucket: "b").caBundle,
            home.path + "/ca.pem")
        home.config("[default]\nca_bundle = \(home.path)/ca.pem\n")
        XCTAssertEqual(try env([:]).settings().caBundle?.source, "profile default in \(home.configPath)")
        XCTAssertThrowsError(try env(["AWS_CA_BUNDLE": "/nonexistent/ca.pem"]).settings()) { error in
            XCTAssertTrue("\(error)".contains("AWS_CA_BUNDLE"), "\(error)")
        }
    }

    func testMaxAttempts() throws {
        XCTAssertEqual(try env(["AWS_MAX_ATTEMPTS": "3"]).s3Configuration(bucket: "b").retry.maxAttempts, 3)
        XCTAssertThrowsError(try env(["AWS_MAX_ATTEMPTS": "zero"]).settings())
    }

    func testMissingNamedProfileSaysWhichFilesAndWhatIsThere() {
        home.credentials("[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s3cr3t-default\n")
        home.config("[dev]\nregion = eu-west-1\n")
        XCTAssertThrowsError(try env(["AWS_PROFILE": "dev"]).s3Configuration(bucket: "b")) { error in
            let e = error as? StoreError
            XCTAssertEqual(e?.kind, .configuration)
            let text = "\(error)"
            XCTAssertTrue(text.contains("\"dev\" (from AWS_PROFILE)"), text)
            XCTAssertTrue(text.contains(self.home.credentialsPath), text)
            XCTAssertTrue(text.contains(self.home.configPath), text)
            XCTAssertTrue(text.contains("[profile dev]"), "hint about the config file's section syntax: \(text)")
            assertNoSecret(text, ["s3cr3t"])
        }
        XCTAssertThrowsError(try env([:], profile: "nope").settings()) { error in
            XCTAssertTrue("\(error)".contains("--profile"), "\(error)")
        }
    }

    func testMissingFilesWithExplicitProfile() {
        XCTAssertThrowsError(try env(["AWS_PROFILE": "dev"]).settings()) { error in
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
    }

    func testConstructionIsLazyAndSharesOneChain() throws {
        let server = try FakeAWSMetadataServer.start(for: self)
        let e = AWSEnvironment(
            environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.imdsEndpoint],
            homeDirectory: home.path, httpClient: client)
        let a = try e.s3Configuration(bucket: "a")
        let b = try e.s3Configuration(bucket: "b")
        XCTAssertEqual(client.sent, [], "no request before credentials are needed")
        XCTAssertTrue(e.describe().contains("credentials not yet resolved"), e.describe())
        XCTAssertEqual(try a.credentials.credentials().accessKeyId, "IMDSKEY1")
        XCTAssertEqual(try b.credentials.credentials().accessKeyId, "IMDSKEY1", "one chain, one fetch")
        XCTAssertEqual(try server.requests().filter { $0.method == "PUT" }.count, 1)
    }

    func testDescribeSaysWhereEverythingCameFrom() throws {
        home.credentials("[dev]\naws_access_key_id = AKIDEXAMPLEDEV1\naws_secret_access_key = s3cr3t-dev\n")
        home.config("[profile dev]\nregion = eu-central-1\n")
        let e = env(["AWS_PROFILE": "dev", "AWS_REGION": "us-east-2", "AWS_ENDPOINT_URL": "http://127.0.0.1:8333"])
        let text = e.describe(resolveCredentials: true)
        XCTAssertTrue(text.contains("profile dev from AWS_PROFILE"), text)
        XCTAssertTrue(text.contains("region us-east-2 from AWS_REGION"), text)
        XCTAssertTrue(text.contains("endpoint http://127.0.0.1:8333 from AWS_ENDPOINT_URL"), text)
        XCTAssertTrue(text.contains("addressing style path"), text)
        XCTAssertTrue(text.contains("credentials from profile dev in \(home.credentialsPath)"), text)
        XCTAssertTrue(text.contains("AKID…DEV1"), text)
        assertNoSecret(text, ["s3cr3t-dev", "AKIDEXAMPLEDEV1"])
    }

    func testDescribeShowsConfigurationErrors() {
        let text = env(["AWS_PROFILE": "ghost"]).describe()
        XCTAssertTrue(text.contains("ghost"), text)
    }
}
