import Foundation
import StrataCore
import StrataInspect
import XCTest

final class VerifyIDPatternTests: XCTestCase {
    let receipt = "IMAGE#{uuid}#RECEIPT#{5 digits}#LINE#{5 digits}"

    func testReceiptPattern() throws {
        let p = try IDPattern(receipt)
        XCTAssertTrue(p.matches("IMAGE#3f2b8c1e-9d4a-4b7e-8c2f-1a2b3c4d5e6f#RECEIPT#00001#LINE#00042"))
        XCTAssertTrue(
            p.matches("IMAGE#3F2B8C1E-9D4A-4B7E-8C2F-1A2B3C4D5E6F#RECEIPT#00001#LINE#00042"), "uuid in either case")
        XCTAssertFalse(p.matches("IMAGE#3f2b8c1e-9d4a-4b7e-8c2f-1a2b3c4d5e6f#RECEIPT#0001#LINE#00042"), "4 digits")
        XCTAssertFalse(
            p.matches("IMAGE#3f2b8c1e-9d4a-4b7e-8c2f-1a2b3c4d5e6f#RECEIPT#00001#LINE#000421"), "trailing digit")
        XCTAssertFalse(
            p.matches("IMAGE#3f2b8c1e9d4a4b7e8c2f1a2b3c4d5e6f#RECEIPT#00001#LINE#00042"), "uuid without dashes")
        XCTAssertFalse(
            p.matches("image#3f2b8c1e-9d4a-4b7e-8c2f-1a2b3c4d5e6f#RECEIPT#00001#LINE#00042"),
            "literals are case-sensitive")
        XCTAssertFalse(p.matches("img-7/line-3"))
        XCTAssertFalse(p.matches(""))
    }

    func testVariableLengthPlaceholders() throws {
        let p = try IDPattern("doc-{digits}/{hex}.{any}")
        XCTAssertTrue(p.matches("doc-7/ff.x"))
        XCTAssertTrue(p.matches("doc-123/DEADbeef.a.b.c"))
        XCTAssertFalse(p.matches("doc-/ff.x"), "{digits} needs one digit")
        XCTAssertFalse(p.matches("doc-1/.x"), "{hex} needs one hex digit")
        XCTAssertFalse(p.matches("doc-1/ff."), "{any} needs one character")
        XCTAssertFalse(p.matches("doc-1/fg.x"))
        // Backtracking: {any} must give back what the literal after it needs.
        XCTAssertTrue(try IDPattern("{any}#{any}#end").matches("a#b#c#end"))
        XCTAssertTrue(try IDPattern("{digits}{5 digits}").matches("1234567"))
        XCTAssertFalse(try IDPattern("{digits}{5 digits}").matches("12345"))
        // Many {any}s against a long non-matching id stay fast (memoised).
        let slow = try IDPattern(String(repeating: "{any}a", count: 8) + "b")
        XCTAssertFalse(slow.matches(String(repeating: "a", count: 300)))
    }

    func testBracesAndErrors() throws {
        XCTAssertTrue(try IDPattern("{{x}}-{digits}").matches("{x}-12"))
        for bad in ["", "IMAGE#{uuid4}", "{5 digit}s{", "x}", "{0 digits}", "{many digits}"] {
            XCTAssertThrowsError(try IDPattern(bad), bad)
        }
        XCTAssertTrue(try IDPattern("{1 digit}").matches("7"))
    }
}

final class VerifySettingsTests: XCTestCase {
    func testDurations() {
        let cases: [(String, TimeInterval?)] = [
            ("0s", 0), ("0", 0), ("90", 90), ("45s", 45), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172_800),
            ("500ms", 0.5), ("1.5h", 5400), ("", nil), ("h", nil), ("1x", nil), ("-5m", nil), ("5m3", nil),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(VerifySettings.parseDuration(text), expected, text)
        }
        XCTAssertEqual(VerifySettings.describe(duration: 42), "42s")
        XCTAssertEqual(VerifySettings.describe(duration: 3 * 3600 + 12 * 60), "3h 12m")
        XCTAssertEqual(VerifySettings.describe(duration: 86400 * 2), "2d")
    }
}

final class VerifyReportTests: XCTestCase {
    func testStoreErrorsAreNamed() {
        let cases: [(StoreError.Kind, String)] = [
            (.invalidCredentials, "invalid credentials"), (.clockSkew, "clock skew"), (.noSuchBucket, "missing bucket"),
            (.accessDenied, "access denied"), (.wrongRegion, "wrong region"), (.transient, "does not answer"),
            (.configuration, "configuration error"),
        ]
        for (kind, words) in cases {
            let e = StoreError(
                kind, operation: "ListObjectsV2", status: 403, code: "Code", message: "refused",
                requestId: "R1", hint: "the store's hint")
            let f = Verifier.storeAccessFinding(e, location: "s3://b/")
            XCTAssertEqual(f.check, VerifyCheck.storeAccess)
            XCTAssertEqual(f.status, .failed)
            XCTAssertTrue(f.message.contains(words), "\(kind): \(f.message)")
            XCTAssertEqual(f.evidence["error_kind"], .string(kind.rawValue))
            XCTAssertEqual(f.evidence["request_id"], .string("R1"))
            XCTAssertTrue(f.hint?.contains("the store's hint") == true, "\(kind): keeps the store's own hint")
        }
    }

    func testReportOrderSummaryJSONAndText() throws {
        let findings = [
            VerifyFinding(check: "pointer", collection: "words", status: .passed, message: "fine"),
            VerifyFinding(
                check: "snapshot.rows", collection: "lines", status: .failed, message: "empty snapshot",
                evidence: ["file_rows": .int(0), "examples": .list(["a", "b"])], hint: "roll back"),
            VerifyFinding(check: "store.access", collection: nil, status: .passed, message: "answers"),
            VerifyFinding(check: "lease", collection: "lines", status: .warning, message: "stale lease"),
        ]
        let r = VerifyReport(
            store: "s3://b/", checkedAt: Date(timeIntervalSince1970: 0), collections: ["lines", "words"],
            findings: findings)
        XCTAssertEqual(r.findings.map(\.check), ["store.access", "snapshot.rows", "lease", "pointer"])
        XCTAssertEqual(r.summary, VerifyReport.Summary(passed: 2, info: 0, warning: 1, failed: 1))
        XCTAssertEqual(r.status, .failed)
        XCTAssertEqual(r.exitCode, 1)

        let json = try JSONSerialization.jsonObject(with: try r.json()) as! [String: Any]
        XCTAssertEqual(json["status"] as? String, "failed")
        let first = (json["findings"] as! [[String: Any]])[1]
        XCTAssertEqual(first["check"] as? String, "snapshot.rows")
        XCTAssertEqual(first["collection"] as? String, "lines")
        XCTAssertEqual((first["evidence"] as? [String: Any])?["file_rows"] as? Int, 0)
        XCTAssertEqual(first["hint"] as? String, "roll back")
        let back = try StrataJSON.decoder().decode(VerifyReport.self, from: try r.json())
        XCTAssertEqual(back.findings, r.findings)

        let text = r.text(unicode: false)
        XCTAssertTrue(text.contains("\nstore\n  ok   store.access"), text)
        XCTAssertTrue(text.contains("\ncollection lines\n  FAIL snapshot.rows"), text)
        XCTAssertTrue(text.contains("      hint: roll back"), text)
        XCTAssertTrue(text.contains("        - a\n"), text)
        XCTAssertTrue(text.hasSuffix("summary: 2 passed, 0 info, 1 warning, 1 failed: FAILED\n"), text)
        XCTAssertTrue(r.text(unicode: true).contains("✗ snapshot.rows"))
    }
}
