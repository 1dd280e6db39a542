import Foundation
import StrataCore
import XCTest

@testable import StrataS3

/// The INI dialect of `~/.aws/config` and `~/.aws/credentials`.
final class AWSEnvironmentConfigFileTests: XCTestCase {
    func parse(_ text: String, _ kind: AWSConfigFile.Kind = .config) throws -> AWSConfigFile {
        try AWSConfigFile.parse(text, path: "/h/.aws/\(kind.rawValue)", kind: kind)
    }

    func testProfilesCommentsWhitespaceAndKeyCase() throws {
        let f = try parse(
            """
            # a comment
            ; another
            [default]
            region=eu-west-1
              [profile   dev ]   # trailing comment
            Region = us-west-2   ; inline comment
            AWS_Access_Key_ID =  AKIDDEV
            endpoint_url = http://127.0.0.1:9000/#not-a-comment

            [sso-session corp]
            sso_region = us-east-1
            [services local]
            s3 =
              endpoint_url = http://127.0.0.1:8333
              addressing_style = path
            [not-a-profile]
            region = nowhere
            """)
        XCTAssertEqual(f.profiles["default"]?["region"], "eu-west-1")
        XCTAssertEqual(f.profiles["dev"]?["region"], "us-west-2")
        XCTAssertEqual(f.profiles["dev"]?["aws_access_key_id"], "AKIDDEV")
        XCTAssertEqual(f.profiles["dev"]?["endpoint_url"], "http://127.0.0.1:9000/#not-a-comment")
        XCTAssertEqual(f.sections["sso-session"]?["corp"]?["sso_region"], "us-east-1")
        XCTAssertEqual(f.sections["services"]?["local"]?.nested["s3"]?["endpoint_url"], "http://127.0.0.1:8333")
        XCTAssertNil(f.profiles["not-a-profile"])
        XCTAssertEqual(f.misplacedProfiles["not-a-profile"], "[not-a-profile]")
        XCTAssertEqual(Set(f.profiles.keys), ["default", "dev"])
    }

    func testProfileDefaultWinsOverDefaultInConfig() throws {
        let f = try parse(
            """
            [profile default]
            region = from-profile-default
            [default]
            region = from-default
            output = json
            """)
        XCTAssertEqual(f.profiles["default"]?["region"], "from-profile-default")
        XCTAssertNil(f.profiles["default"]?["output"])
    }

    func testCredentialsFileUsesBareNames() throws {
        let f = try parse(
            """
            [default]
            aws_access_key_id = AKIDDEFAULT
            [dev]
            aws_access_key_id = AKIDDEV
            [profile ops]
            aws_access_key_id = AKIDOPS
            """, .credentials)
        XCTAssertEqual(f.profiles["dev"]?["aws_access_key_id"], "AKIDDEV")
        XCTAssertNil(f.profiles["ops"])
        XCTAssertEqual(f.misplacedProfiles["ops"], "[profile ops]")
    }

    func testNestedBlocksContinuationsAndRepeats() throws {
        let f = try parse(
            """
            [profile dev]
            s3 =
              addressing_style = virtual
              Endpoint_URL = http://127.0.0.1:1
            note = first
              second line
            region = a
            [profile dev]
            region = b
            """)
        let dev = try XCTUnwrap(f.profiles["dev"])
        XCTAssertEqual(dev.nested["s3"]?["addressing_style"], "virtual")
        XCTAssertEqual(dev.nested["s3"]?["endpoint_url"], "http://127.0.0.1:1")
        XCTAssertNil(dev["s3"])
        XCTAssertEqual(dev["note"], "first\nsecond line")
        XCTAssertEqual(dev["region"], "b", "a repeated section overrides key by key")
    }

    func testCRLFAndBOM() throws {
        let f = try parse("\u{FEFF}[default]\r\nregion = ap-south-1\r\n")
        XCTAssertEqual(f.profiles["default"]?["region"], "ap-south-1")
    }

    func testSyntaxErrorsNameFileAndLineButNotTheText() {
        let cases = [
            "aws_secret_access_key = s3cr3t-before-section\n",
            "[default]\nthis line has no equals s3cr3t\n",
            "[default\nregion = x\n",
            "[default]\n  s3cr3t indented first\n".replacingOccurrences(of: "[default]\n", with: "[default]\n"),
        ]
        for (i, text) in cases.enumerated() {
            XCTAssertThrowsError(try parse(text, .credentials), "case \(i)") { error in
                guard let e = error as? StoreError else { return XCTFail("not a StoreError: \(error)") }
                XCTAssertEqual(e.kind, .configuration)
                XCTAssertTrue(e.key?.hasPrefix("/h/.aws/credentials:") ?? false, "\(e)")
                assertNoSecret("\(e)", ["s3cr3t"])
            }
        }
    }

    func testIndentedFirstLineAfterSectionIsAnError() {
        XCTAssertThrowsError(try parse("[default]\n   region = x\n"))
    }

    func testMissingFilesAreEmpty() throws {
        let home = TempHome()
        let shared = try AWSSharedConfig.load(environment: [:], homeDirectory: home.path)
        XCTAssertNil(shared.credentialsFile)
        XCTAssertNil(shared.configFile)
        XCTAssertEqual(shared.credentialsPath, home.credentialsPath)
        XCTAssertEqual(shared.configPath, home.configPath)
    }

    func testFileLocationsFromEnvironmentWithTilde() throws {
        let home = TempHome()
        home.write("elsewhere/creds", "[default]\naws_access_key_id = AKIDX\n")
        home.write("elsewhere/conf", "[default]\nregion = eu-north-1\n")
        let shared = try AWSSharedConfig.load(
            environment: [
                "AWS_SHARED_CREDENTIALS_FILE": "~/elsewhere/creds",
                "AWS_CONFIG_FILE": home.path + "/elsewhere/conf",
            ],
            homeDirectory: home.path)
        XCTAssertEqual(shared.credentialsPath, home.path + "/elsewhere/creds")
        XCTAssertEqual(shared.credentialsFile?.profiles["default"]?["aws_access_key_id"], "AKIDX")
        XCTAssertEqual(shared.configFile?.profiles["default"]?["region"], "eu-north-1")
    }
}
