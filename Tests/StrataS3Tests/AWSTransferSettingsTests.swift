import Foundation
import StrataCore
import XCTest

@testable import StrataS3

/// multipart_threshold, multipart_chunksize and max_concurrent_requests from the profile's `s3`
/// block of ~/.aws/config, as the AWS CLI reads them, into the S3 store's settings.
final class AWSTransferSettingsTests: XCTestCase {
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

    func configuration(profile: String? = nil) throws -> S3Configuration {
        try AWSEnvironment(
            environment: noIMDS.merging(["AWS_REGION": "eu-west-1"]) { $1 }, homeDirectory: home.path,
            httpClient: client, profile: profile
        ).s3Configuration(bucket: "b-1")
    }

    func testSettingsComeFromTheProfilesS3Block() throws {
        home.config(
            """
            [default]
            s3 =
              multipart_threshold = 8MB
              multipart_chunksize = 6MiB
              max_concurrent_requests = 10
            [profile big]
            s3 =
              multipart_chunksize = 1GB
            """)
        let c = try configuration()
        XCTAssertEqual(c.multipartThreshold, 8 << 20)
        XCTAssertEqual(c.partSize, 6 << 20)
        XCTAssertEqual(c.concurrency, 10)
        let big = try configuration(profile: "big")
        XCTAssertEqual(big.partSize, 1 << 30)
        let defaults = S3Configuration(
            bucket: "b-1", region: "eu-west-1", endpoint: nil,
            credentials: StaticCredentialsProvider(
                Credentials(accessKeyId: "a", secretAccessKey: "s"), source: "t"))
        XCTAssertEqual(big.multipartThreshold, defaults.multipartThreshold, "unset settings keep the defaults")
        XCTAssertEqual(big.concurrency, defaults.concurrency)
    }

    func testBadValuesNameTheSettingAndTheFile() throws {
        for (line, word) in [
            ("multipart_chunksize = 1MB", "multipart_chunksize"),
            ("multipart_threshold = lots", "lots"),
            ("max_concurrent_requests = 0", "max_concurrent_requests"),
        ] {
            home.config("[default]\ns3 =\n  \(line)\n")
            XCTAssertThrowsError(try configuration(), line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(word) && text.contains("config"), text)
            }
        }
    }

    func testSizesAreReadAsTheAWSCLIReadsThem() throws {
        func size(_ v: String) throws -> Int64 { try AWSTransferSettings.size(AWSSetting(v, source: "t")) }
        XCTAssertEqual(try size("1048576"), 1 << 20)
        XCTAssertEqual(try size("64MB"), 64 << 20)
        XCTAssertEqual(try size("64 mb"), 64 << 20)
        XCTAssertEqual(try size("2GiB"), 2 << 30)
        XCTAssertEqual(try size("10KB"), 10 << 10)
        for bad in ["", "MB", "-1MB", "1.5MB", "9999999999999TB"] { XCTAssertThrowsError(try size(bad), bad) }
    }
}
