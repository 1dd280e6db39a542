import Foundation
import StrataCore
import XCTest

@testable import StrataS3

/// Web identity (STS), container (ECS/EKS) and IMDSv2 against the fake server on loopback.
final class CredentialHTTPSourcesTests: XCTestCase {
    var home: TempHome!
    var client: LoopbackURLSessionClient!
    var server: FakeAWSMetadataServer!
    let clock = TestClock()

    let roleArn = "arn:aws:iam::123456789012:role/strata-test"

    override func setUpWithError() throws {
        home = TempHome()
        client = LoopbackURLSessionClient()
        server = try FakeAWSMetadataServer.start(for: self)
    }

    override func tearDown() {
        XCTAssertEqual(client.refused, [], "a test tried to leave loopback")
        home = nil
    }

    /// An environment with IMDS disabled unless the test points it at the fake server.
    func environment(_ vars: [String: String], imds: Bool = false) -> AWSEnvironment {
        var base = imds ? ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.imdsEndpoint] : noIMDS
        base.merge(vars) { $1 }
        return AWSEnvironment(
            environment: base, homeDirectory: home.path, httpClient: client, profile: nil,
            logger: AWSLog.noop, now: clock.function, containerAgentBase: server.base)
    }

    func chain(_ vars: [String: String], imds: Bool = false) throws -> AWSCredentialChain {
        try environment(vars, imds: imds).credentialChain()
    }

    // MARK: - Web identity

    func webIdentityVars(token: String = "web-identity-token-1") -> [String: String] {
        home.write("token", token)
        return [
            "AWS_WEB_IDENTITY_TOKEN_FILE": home.path + "/token", "AWS_ROLE_ARN": roleArn,
            "AWS_ROLE_SESSION_NAME": "strata-tests", "AWS_ENDPOINT_URL_STS": server.stsEndpoint,
            "AWS_REGION": "eu-west-1",
        ]
    }

    func testWebIdentityHappyPath() throws {
        try server.configure(["sts": ["expiration": clock.iso(in: 3600)]])
        let c = try chain(webIdentityVars())
        let creds = try c.credentials()
        XCTAssertEqual(creds.accessKeyId, "STSKEY1")
        XCTAssertEqual(creds.secretAccessKey, "sts-secret-1")
        XCTAssertEqual(creds.sessionToken, "sts-session-1")
        XCTAssertEqual(creds.expiration, clock.now.addingTimeInterval(3600))
        XCTAssertTrue(c.source.contains("web identity (role \(roleArn)"), c.source)
        assertNoSecret(c.source + creds.description, ["sts-secret-1", "sts-session-1", "web-identity-token-1"])

        let seen = try server.requests()
        XCTAssertEqual(seen.count, 1)
        XCTAssertEqual(seen[0].method, "POST")
        XCTAssertEqual(seen[0].form["RoleArn"], roleArn)
        XCTAssertEqual(seen[0].form["RoleSessionName"], "strata-tests")
        XCTAssertEqual(seen[0].form["WebIdentityToken"], "web-identity-token-1")
        XCTAssertNil(seen[0].headers["authorization"], "AssumeRoleWithWebIdentity is unsigned")
    }

    func testWebIdentityRereadsTheTokenFileOnRefresh() throws {
        try server.configure(["sts": ["expiration": clock.iso(in: 3600)]])
        let c = try chain(webIdentityVars())
        XCTAssertEqual(try c.credentials().accessKeyId, "STSKEY1")

        // EKS rotates the projected token; STS now only accepts the new one.
        home.write("token", "web-identity-token-2\n")
        try server.configure(["sts": ["token": "web-identity-token-2", "expiration": clock.iso(in: 7200)]])
        clock.advance(3600 - 299)  // inside the 5-minute refresh window
        XCTAssertEqual(try c.credentials().accessKeyId, "STSKEY2")
        XCTAssertEqual(try server.requests().last?.form["WebIdentityToken"], "web-identity-token-2")
    }

    func testWebIdentityFromProfile() throws {
        home.write("token", "web-identity-token-1")
        home.config(
            """
            [profile irsa]
            role_arn = \(roleArn)
            web_identity_token_file = ~/token
            role_session_name = from-profile
            """)
        let c = try chain(["AWS_PROFILE": "irsa", "AWS_ENDPOINT_URL_STS": server.stsEndpoint])
        XCTAssertEqual(try c.credentials().accessKeyId, "STSKEY1")
        XCTAssertEqual(try server.requests().last?.form["RoleSessionName"], "from-profile")
        XCTAssertTrue(c.source.contains("from profile irsa"), c.source)
    }

    func testWebIdentityErrors() throws {
        // Wrong role: AccessDenied with a hint about the trust policy; the token never appears.
        var vars = webIdentityVars()
        vars["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/other"
        XCTAssertThrowsError(try chain(vars).credentials()) { error in
            let e = error as? StoreError
            XCTAssertEqual(e?.kind, .accessDenied)
            XCTAssertEqual(e?.code, "AccessDenied")
            XCTAssertEqual(e?.requestId, "fake-request-id")
            XCTAssertTrue(e?.hint?.contains("trust policy") ?? false)
            assertNoSecret("\(error)", ["web-identity-token-1"])
        }
        // Wrong token.
        XCTAssertThrowsError(try chain(webIdentityVars(token: "stale-token")).credentials()) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .invalidCredentials)
            assertNoSecret("\(error)", ["stale-token"])
        }
        // Half configured.
        XCTAssertThrowsError(try chain(["AWS_ROLE_ARN": roleArn]).credentials()) { error in
            XCTAssertEqual((error as? StoreError)?.key, "AWS_WEB_IDENTITY_TOKEN_FILE")
        }
        // Token file missing.
        vars = webIdentityVars()
        vars["AWS_WEB_IDENTITY_TOKEN_FILE"] = home.path + "/missing-token"
        XCTAssertThrowsError(try chain(vars).credentials()) { error in
            XCTAssertTrue("\(error)".contains("missing-token"), "\(error)")
        }
    }

    func testDefaultSTSEndpointIsRegional() throws {
        let s = try environment(["AWS_REGION": "eu-west-1"]).settings()
        XCTAssertEqual(s.stsEndpoint.value, "https://sts.eu-west-1.amazonaws.com/")
        XCTAssertEqual(
            try environment(["AWS_REGION": "cn-north-1"]).settings().stsEndpoint.value,
            "https://sts.cn-north-1.amazonaws.com.cn/")
        XCTAssertEqual(
            try environment(["AWS_ENDPOINT_URL_STS": server.stsEndpoint]).settings().stsEndpoint.value,
            server.base + "/sts")
    }

    // MARK: - Container credentials

    func testContainerRelativeURI() throws {
        try server.configure(["ecs": ["expiration": clock.iso(in: 3600)]])
        let c = try chain(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/ecs/v2/credentials/task-1"])
        let creds = try c.credentials()
        XCTAssertEqual(creds.accessKeyId, "ECSKEY1")
        XCTAssertEqual(creds.sessionToken, "ecs-session-1")
        XCTAssertEqual(creds.expiration, clock.now.addingTimeInterval(3600))
        XCTAssertEqual(try server.requests().last?.path, "/ecs/v2/credentials/task-1")
        XCTAssertTrue(c.source.contains("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), c.source)
    }

    func testContainerFullURIWithToken() throws {
        try server.configure(["ecs": ["authorization": "auth-t0ken"]])
        let c = try chain([
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.ecsURL("/ecs/full"),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "auth-t0ken",
        ])
        XCTAssertEqual(try c.credentials().accessKeyId, "ECSKEY1")
        XCTAssertEqual(try server.requests().last?.headers["authorization"], "auth-t0ken")
        assertNoSecret(c.source, ["auth-t0ken"])

        XCTAssertThrowsError(
            try chain([
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.ecsURL("/ecs/full"),
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong-t0ken",
            ]).credentials()
        ) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .accessDenied)
            XCTAssertEqual((error as? StoreError)?.status, 401)
            assertNoSecret("\(error)", ["wrong-t0ken", "auth-t0ken"])
        }
    }

    func testContainerFullURIWithTokenFileRereadOnRefresh() throws {
        try server.configure(["ecs": ["authorization": "pod-t0ken-1", "expiration": clock.iso(in: 900)]])
        home.write("eks-token", "pod-t0ken-1\n")
        let c = try chain([
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.ecsURL("/ecs/pod"),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": home.path + "/eks-token",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored-when-file-is-set",
        ])
        XCTAssertEqual(try c.credentials().accessKeyId, "ECSKEY1")
        XCTAssertEqual(try server.requests().last?.headers["authorization"], "pod-t0ken-1")

        home.write("eks-token", "pod-t0ken-2")
        try server.configure(["ecs": ["authorization": "pod-t0ken-2", "expiration": clock.iso(in: 1800)]])
        clock.advance(900 * 0.81)  // past 80% of a 15-minute lifetime
        XCTAssertEqual(try c.credentials().accessKeyId, "ECSKEY2")
        XCTAssertEqual(try server.requests().last?.headers["authorization"], "pod-t0ken-2")
    }

    func testContainerFullURIMustBeSafe() {
        XCTAssertThrowsError(try chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.1.2.3/creds"]).credentials()) {
            XCTAssertTrue("\($0)".contains("not allowed"), "\($0)")
        }
        XCTAssertNoThrow(try ContainerCredentialSource.validateFullURI("http://169.254.170.23/v1/credentials"))
        XCTAssertNoThrow(try ContainerCredentialSource.validateFullURI("http://[fd00:ec2::23]/v1/credentials"))
        XCTAssertNoThrow(try ContainerCredentialSource.validateFullURI("https://creds.example.com/x"))
        XCTAssertNoThrow(try ContainerCredentialSource.validateFullURI("http://localhost:8080/x"))
        XCTAssertEqual(client.sent, [])
    }

    // MARK: - IMDSv2

    func testIMDSv2FlowWithToken() throws {
        try server.configure(["imds": ["expiration": clock.iso(in: 6 * 3600)]])
        let c = try chain([:], imds: true)
        let creds = try c.credentials()
        XCTAssertEqual(creds.accessKeyId, "IMDSKEY1")
        XCTAssertEqual(creds.sessionToken, "imds-session-1")
        XCTAssertEqual(c.source, "EC2 instance metadata at \(server.imdsEndpoint)")

        let seen = try server.requests()
        XCTAssertEqual(
            seen.map { "\($0.method) \($0.path)" },
            [
                "PUT /latest/api/token",
                "GET /latest/meta-data/iam/security-credentials/",
                "GET /latest/meta-data/iam/security-credentials/strata-test-role",
            ])
        XCTAssertEqual(seen[0].headers["x-aws-ec2-metadata-token-ttl-seconds"], "21600")
        XCTAssertEqual(seen[1].headers["x-aws-ec2-metadata-token"], "imds-token-1")
        XCTAssertEqual(seen[2].headers["x-aws-ec2-metadata-token"], "imds-token-1")

        // A refresh reuses the session token.
        try server.configure(["imds": ["expiration": clock.iso(in: 12 * 3600)]])
        clock.advance(6 * 3600 - 120)
        XCTAssertEqual(try c.credentials().accessKeyId, "IMDSKEY2")
        XCTAssertEqual(try server.requests().filter { $0.method == "PUT" }.count, 1)
    }

    func testIMDSExpiredCredentialsAreUsedForAFewMoreMinutes() throws {
        try server.configure(["imds": ["expiration": clock.iso(in: -600)]])
        let c = try chain([:], imds: true)
        let creds = try c.credentials()
        let exp = try XCTUnwrap(creds.expiration)
        XCTAssertGreaterThanOrEqual(exp, clock.now.addingTimeInterval(300))
        XCTAssertLessThanOrEqual(exp, clock.now.addingTimeInterval(600))
        let fetches = try server.requests().count
        _ = try c.credentials()
        XCTAssertEqual(try server.requests().count, fetches, "not fetched again on every call")
    }

    func testIMDSDisabledMakesNoRequest() throws {
        XCTAssertThrowsError(
            try chain([
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": server.imdsEndpoint,
            ]).credentials()
        ) {
            XCTAssertTrue(
                "\($0)".contains("EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED=true"),
                "\($0)")
        }
        XCTAssertEqual(try server.requests().count, 0)
        XCTAssertEqual(client.sent, [])
    }

    func testIMDSWithoutRoleIsSkippedWithReason() throws {
        try server.configure(["imds": ["role": NSNull()]])
        XCTAssertThrowsError(try chain([:], imds: true).credentials()) {
            XCTAssertTrue("\($0)".contains("no IAM role"), "\($0)")
        }
    }

    func testIMDSNotThereFailsFast() throws {
        // A loopback port with nothing listening: connection refused, skipped quickly.
        let closed = FakeAWSMetadataServer.closedPort()
        let start = Date()
        XCTAssertThrowsError(
            try chain(["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(closed)"], imds: true)
                .credentials()
        ) {
            XCTAssertTrue("\($0)".contains("no answer from http://127.0.0.1:\(closed)"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testIMDSv1FallbackOnlyWhenAllowed() throws {
        try server.configure(["imds": ["token_status": 403, "allow_v1": true]])
        XCTAssertEqual(try chain([:], imds: true).credentials().accessKeyId, "IMDSKEY1")
        XCTAssertNil(try server.requests().last?.headers["x-aws-ec2-metadata-token"])
        XCTAssertThrowsError(try chain(["AWS_EC2_METADATA_V1_DISABLED": "true"], imds: true).credentials()) {
            XCTAssertTrue("\($0)".contains("IMDSv1 fallback is disabled"), "\($0)")
        }
    }

    // MARK: - Refresh

    func testFailedRefreshKeepsValidCredentialsThenExpiredOnesFail() throws {
        try server.configure(["ecs": ["expiration": clock.iso(in: 3600)]])
        let c = try chain(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/ecs/task"])
        XCTAssertEqual(try c.credentials().accessKeyId, "ECSKEY1")

        try server.configure(["ecs": ["status": 500]])
        clock.advance(3600 - 120)  // due for refresh, still valid
        XCTAssertEqual(try c.credentials().accessKeyId, "ECSKEY1", "the old credentials are kept")
        let failedFetches = try server.requests().count
        XCTAssertEqual(try c.credentials().accessKeyId, "ECSKEY1")
        XCTAssertEqual(try server.requests().count, failedFetches, "no new attempt right after a failure")

        clock.advance(121)  // expired
        XCTAssertThrowsError(try c.credentials()) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .transient)
        }
        try server.configure(["ecs": ["status": 200, "expiration": clock.iso(in: 3600)]])
        XCTAssertEqual(try c.credentials().accessKeyId.hasPrefix("ECSKEY"), true)
    }
}
