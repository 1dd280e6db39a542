import Foundation
import StrataCore
import XCTest

@testable import StrataS3

/// The chain's order and errors with the local sources (environment, shared files).
final class CredentialChainTests: XCTestCase {
    var home: TempHome!
    var client: LoopbackURLSessionClient!

    let envSecret = "s3cr3t-from-env"
    let fileSecret = "s3cr3t-from-file"
    let configSecret = "s3cr3t-from-config"
    var secrets: [String] { [envSecret, fileSecret, configSecret, "session-t0ken"] }

    override func setUp() {
        home = TempHome()
        client = LoopbackURLSessionClient()
    }

    override func tearDown() {
        XCTAssertEqual(client.refused, [], "a test tried to leave loopback")
        home = nil
    }

    func chain(_ vars: [String: String], profile: String? = nil) throws -> AWSCredentialChain {
        try AWSEnvironment(
            environment: noIMDS.merging(vars) { $1 }, homeDirectory: home.path, httpClient: client,
            profile: profile
        ).credentialChain()
    }

    func writeProfiles() {
        home.credentials(
            """
            [default]
            aws_access_key_id = AKIDFILEDEFAULT
            aws_secret_access_key = \(fileSecret)
            [dev]
            aws_access_key_id = AKIDFILEDEV
            aws_secret_access_key = \(fileSecret)
            aws_session_token = session-t0ken
            """)
    }

    func testEnvironmentWinsOverProfile() throws {
        writeProfiles()
        let c = try chain([
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": envSecret,
            "AWS_SESSION_TOKEN": "session-t0ken", "AWS_PROFILE": "dev",
        ])
        let creds = try c.credentials()
        XCTAssertEqual(
            creds,
            Credentials(
                accessKeyId: "AKIDENV", secretAccessKey: envSecret,
                sessionToken: "session-t0ken"))
        XCTAssertEqual(c.source, "environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)")
        assertNoSecret("\(creds) \(c.source)", secrets)
    }

    func testProfileSelection() throws {
        writeProfiles()
        let d = try chain([:])
        XCTAssertEqual(try d.credentials().accessKeyId, "AKIDFILEDEFAULT")
        XCTAssertEqual(d.source, "profile default in \(home.credentialsPath)")

        let dev = try chain(["AWS_PROFILE": "dev"])
        XCTAssertEqual(try dev.credentials().accessKeyId, "AKIDFILEDEV")
        XCTAssertEqual(try dev.credentials().sessionToken, "session-t0ken")
        XCTAssertEqual(dev.source, "profile dev in \(home.credentialsPath)")

        XCTAssertEqual(
            try chain(["AWS_PROFILE": "default"], profile: "dev").credentials().accessKeyId, "AKIDFILEDEV",
            "the CLI's --profile wins over AWS_PROFILE")
        XCTAssertEqual(try chain(["AWS_DEFAULT_PROFILE": "dev"]).credentials().accessKeyId, "AKIDFILEDEV")
        XCTAssertEqual(
            try chain(["AWS_PROFILE": ""]).credentials().accessKeyId, "AKIDFILEDEFAULT",
            "an empty AWS_PROFILE counts as unset")
    }

    func testKeyIdWithoutSecretNamesTheMissingVariable() throws {
        writeProfiles()
        XCTAssertThrowsError(try chain(["AWS_ACCESS_KEY_ID": "AKIDENV"]).credentials()) { error in
            let e = error as? StoreError
            XCTAssertEqual(e?.kind, .configuration)
            XCTAssertEqual(e?.key, "AWS_SECRET_ACCESS_KEY")
            XCTAssertTrue("\(error)".contains("AWS_SECRET_ACCESS_KEY is not"), "\(error)")
        }
    }

    func testProfileKeyIdWithoutSecretNamesFileAndProfile() throws {
        home.credentials("[dev]\naws_access_key_id = AKIDFILEDEV\n")
        XCTAssertThrowsError(try chain(["AWS_PROFILE": "dev"]).credentials()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("profile dev in \(self.home.credentialsPath)"), text)
            XCTAssertTrue(text.contains("aws_secret_access_key"), text)
        }
    }

    func testCredentialsFileWinsOverConfigFileAndKeysComeFromOneFile() throws {
        home.credentials("[dev]\naws_access_key_id = AKIDFROMCREDS\naws_secret_access_key = \(fileSecret)\n")
        home.config(
            """
            [profile dev]
            aws_access_key_id = AKIDFROMCONFIG
            aws_secret_access_key = \(configSecret)
            aws_session_token = session-t0ken
            region = eu-west-3
            [profile cfgonly]
            aws_access_key_id = AKIDCFGONLY
            aws_secret_access_key = \(configSecret)
            """)
        let dev = try chain(["AWS_PROFILE": "dev"])
        let c = try dev.credentials()
        XCTAssertEqual(c.accessKeyId, "AKIDFROMCREDS")
        XCTAssertEqual(c.secretAccessKey, fileSecret)
        XCTAssertNil(c.sessionToken, "the token of another file is not mixed in")
        XCTAssertEqual(dev.source, "profile dev in \(home.credentialsPath)")

        let cfg = try chain(["AWS_PROFILE": "cfgonly"])
        XCTAssertEqual(try cfg.credentials().accessKeyId, "AKIDCFGONLY")
        XCTAssertEqual(cfg.source, "profile cfgonly in \(home.configPath)")
    }

    func testNothingFoundListsEverySource() throws {
        home.config("[default]\nregion = eu-west-1\n")
        XCTAssertThrowsError(try chain(["AWS_SECRET_ACCESS_KEY": envSecret]).credentials()) { error in
            let e = error as? StoreError
            XCTAssertEqual(e?.kind, .configuration)
            let text = "\(error)"
            for expected in [
                "environment: AWS_ACCESS_KEY_ID is not set",
                "profile default: profile default has no aws_access_key_id",
                "web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set",
                "container (ECS/EKS): AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED=true",
                "hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ] {
                XCTAssertTrue(text.contains(expected), "missing \"\(expected)\" in:\n\(text)")
            }
            assertNoSecret(text, self.secrets)
        }
    }

    func testNoFilesAtAllIsASkipNotAnError() throws {
        XCTAssertThrowsError(try chain([:]).credentials()) { error in
            XCTAssertTrue("\(error)".contains("no [default] profile in \(self.home.credentialsPath)"), "\(error)")
        }
    }

    func testUnsupportedProfileKindsSaySoAndHowToWorkAround() throws {
        home.config(
            """
            [profile chained]
            role_arn = arn:aws:iam::123456789012:role/x
            source_profile = default
            [profile sso]
            sso_session = corp
            sso_account_id = 123456789012
            [profile proc]
            credential_process = /usr/local/bin/get-creds
            [profile lonely]
            role_arn = arn:aws:iam::123456789012:role/x
            """)
        for (name, words) in [
            ("chained", "source_profile"), ("sso", "SSO"), ("proc", "credential_process"),
            ("lonely", "web_identity_token_file"),
        ] {
            XCTAssertThrowsError(try chain(["AWS_PROFILE": name]).credentials(), name) { error in
                let text = "\(error)"
                XCTAssertEqual((error as? StoreError)?.kind, .configuration)
                XCTAssertTrue(text.contains(words), "\(name): \(text)")
                XCTAssertTrue(text.contains("profile \(name)"), "\(name): \(text)")
            }
        }
        XCTAssertThrowsError(try chain(["AWS_PROFILE": "proc"]).credentials()) { error in
            XCTAssertTrue("\(error)".contains("aws configure export-credentials --profile proc"), "\(error)")
        }
    }

    func testDescriptionsNeverShowSecrets() throws {
        writeProfiles()
        let settings = try AWSEnvironment(environment: noIMDS, homeDirectory: home.path, httpClient: client)
            .settings()
        var dumped = ""
        dump(settings, to: &dumped)
        assertNoSecret(dumped + "\(settings)" + String(reflecting: settings.profile), secrets)
        XCTAssertTrue(dumped.contains("AKIDFILEDEV"), "the dump still shows what is not secret")
        let c = try chain(["AWS_PROFILE": "dev"])
        let creds = try c.credentials()
        assertNoSecret(creds.description, secrets)
        assertNoSecret(String(describing: creds), secrets)
        assertNoSecret(c.source, secrets)
        assertNoSecret(String(describing: c.resolvedProvider.map { $0.source } ?? ""), secrets)
    }
}
