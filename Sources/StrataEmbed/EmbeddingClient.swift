import Foundation
import StrataCore
import StrataS3
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Why embedding failed. The description names the endpoint (never the key), the server's own
/// message when it gave one, and the fix.
public struct EmbeddingError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        /// The server refused the request (4xx other than 408/429): retrying cannot help.
        case rejected
        /// Retries on 429, 5xx, resets or timeouts ran out (attempts or total time).
        case unavailable
        /// The answer is not an embeddings list of the expected shape.
        case malformed
        /// A vector has the wrong number of values.
        case dimension
        /// The settings are wrong (URL, model, limits).
        case configuration
    }

    public var kind: Kind
    public var endpoint: String
    public var message: String
    public var fix: String?
    /// The HTTP status of the last answer, when there was one.
    public var status: Int?

    public init(_ kind: Kind, endpoint: String, message: String, fix: String? = nil, status: Int? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.message = message
        self.fix = fix
        self.status = status
    }

    public var description: String {
        "embeddings \(endpoint): \(message)" + (fix.map { " (fix: \($0))" } ?? "")
    }
}

/// One text's vector and what the server said it cost.
public struct EmbeddingBatch: Sendable {
    public var vectors: [[Float]]
    public var tokens: Int
}

/// An OpenAI-compatible embeddings client over libcurl (`CurlHTTPClient`). `embed` sends one
/// batch and returns its vectors in input order, with retries (backoff with full jitter,
/// honouring `Retry-After` and `x-ratelimit-reset-*`) on 429, 5xx, resets and timeouts within
/// `maxAttempts` and `maxRetryTime`; a batch the server rejects as too large is split in two and
/// each half sent again; any other 4xx fails at once with the server's message. Thread-safe:
/// several batches may be in flight at once.
public final class EmbeddingClient: Sendable {
    public let settings: EmbeddingSettings
    public let meter: EmbeddingMeter
    let http: any HTTPClient
    /// Sleeps between attempts (tests pass a recorder).
    let sleep: @Sendable (Double) -> Void
    private let base64Refused = Mutex(false)

    public init(
        settings: EmbeddingSettings, http: (any HTTPClient)? = nil, meter: EmbeddingMeter = EmbeddingMeter(),
        sleep: @escaping @Sendable (Double) -> Void = { s in if s > 0 { usleep(useconds_t(min(s, 3600) * 1e6)) } }
    ) throws {
        if let p = settings.problem {
            throw EmbeddingError(.configuration, endpoint: settings.endpoint, message: p, fix: "correct the setting")
        }
        self.settings = settings
        // A server computing a large batch sends nothing for a while: the request timeout, not
        // the transport's low-speed limit (30 s), decides when to give up on it.
        self.http =
            http
            ?? CurlHTTPClient(
                options: TransportOptions(
                    lowSpeedLimit: 1, lowSpeedTime: max(30, Int(settings.requestTimeout.rounded(.up)))),
                maxResponseBytes: 512 << 20)
        self.meter = meter
        self.sleep = sleep
    }

    /// The vectors of `texts`, in order. `inputType` is sent as `input_type` when not nil.
    public func embed(_ texts: [String], inputType: String?) throws -> EmbeddingBatch {
        guard !texts.isEmpty else { return EmbeddingBatch(vectors: [], tokens: 0) }
        do {
            return try send(texts, inputType: inputType)
        } catch let e as Oversized {
            guard texts.count > 1 else {
                throw EmbeddingError(
                    .rejected, endpoint: settings.endpoint,
                    message: "the server refused a single input of \(texts[0].utf8.count) bytes as too large: "
                        + e.serverMessage,
                    fix: "shorten the text (embed_text) to the model's input limit", status: e.status)
            }
            meter.add { $0.splits += 1 }
            let mid = texts.count / 2
            let a = try embed(Array(texts[..<mid]), inputType: inputType)
            let b = try embed(Array(texts[mid...]), inputType: inputType)
            return EmbeddingBatch(vectors: a.vectors + b.vectors, tokens: a.tokens + b.tokens)
        }
    }

    struct Oversized: Error {
        var status: Int
        var serverMessage: String
    }

    private var useBase64: Bool {
        settings.preferBase64 && !base64Refused.withLock { $0 }
    }

    private func requestBody(_ texts: [String], inputType: String?, base64: Bool) throws -> Data {
        var body: [String: Any] = ["input": texts, "model": settings.model]
        if let d = settings.dimensions { body["dimensions"] = d }
        if let t = inputType { body["input_type"] = t }
        body["encoding_format"] = base64 ? "base64" : "float"
        return try JSONSerialization.data(withJSONObject: body)
    }

    /// One batch with retries; throws `Oversized` for a too-large rejection.
    private func send(_ texts: [String], inputType: String?) throws -> EmbeddingBatch {
        let started = Date()
        var attempt = 0
        var lastProblem = ""
        var lastStatus: Int?
        while true {
            attempt += 1
            let base64 = useBase64
            var headers: [(name: String, value: String)] = [
                ("Content-Type", "application/json"), ("Accept", "application/json"),
            ]
            if let k = settings.apiKey { headers.append(("Authorization", "Bearer \(k)")) }
            let request = HTTPRequest(
                method: "POST", url: settings.endpoint, headers: headers,
                body: try requestBody(texts, inputType: inputType, base64: base64), timeout: settings.requestTimeout)
            meter.add {
                $0.requests += 1
                if attempt > 1 { $0.retries += 1 }
            }
            var wait: Double?
            do {
                let sent = Date()
                let response: HTTPResponse
                do { response = try http.send(request) } catch {
                    let s = Date().timeIntervalSince(sent)
                    meter.add { $0.requestSeconds += s }
                    throw error
                }
                let took = Date().timeIntervalSince(sent)
                meter.add { $0.requestSeconds += took }
                switch response.status {
                case 200..<300:
                    do {
                        let batch = try parse(response.body, count: texts.count)
                        meter.add {
                            $0.embedded += texts.count
                            $0.tokens += batch.tokens
                        }
                        return batch
                    } catch let e as EmbeddingError where e.kind == .dimension {
                        throw e
                    } catch let e as EmbeddingError {
                        // A cut or garbled answer (a proxy, a crashed worker): worth another try.
                        lastProblem = e.message
                        lastStatus = response.status
                    }
                case 408, 409, 429, 500..<600:
                    lastProblem = "HTTP \(response.status)" + serverMessage(response.body).map { ": \($0)" }.orEmpty
                    lastStatus = response.status
                    wait = EmbeddingClient.serverWait(response.headers)
                default:
                    let message =
                        serverMessage(response.body) ?? String(decoding: response.body.prefix(300), as: UTF8.self)
                    if response.status == 413 || EmbeddingClient.saysTooLarge(message) {
                        throw Oversized(status: response.status, serverMessage: message)
                    }
                    if base64 && message.lowercased().contains("encoding_format") {
                        // A server that knows only float arrays: ask again without base64.
                        base64Refused.withLock { $0 = true }
                        attempt -= 1
                        continue
                    }
                    throw EmbeddingError(
                        .rejected, endpoint: settings.endpoint,
                        message: "HTTP \(response.status): \(message)",
                        fix: response.status == 401 || response.status == 403
                            ? "check OPENAI_API_KEY (it is never printed)" : "check the model and the texts",
                        status: response.status)
                }
            } catch let e as StoreError {
                // No answer: connection refused or reset, a timeout, TLS.
                if e.kind == .configuration {
                    throw EmbeddingError(
                        .configuration, endpoint: settings.endpoint, message: e.message,
                        fix: "check OPENAI_BASE_URL / --embed-url")
                }
                lastProblem = e.message
                lastStatus = nil
            }
            // Retry, within the attempts and the time allowed.
            let backoff = min(settings.maxBackoff, settings.initialBackoff * pow(2, Double(attempt - 1)))
            let delay = max(wait ?? 0, Double.random(in: 0...max(backoff, 0.001)))
            let elapsed = Date().timeIntervalSince(started)
            if attempt >= settings.maxAttempts || elapsed + delay > settings.maxRetryTime {
                throw EmbeddingError(
                    .unavailable, endpoint: settings.endpoint,
                    message: "gave up after \(attempt) attempts in " + String(format: "%.1f s", elapsed)
                        + " (last: \(lastProblem))",
                    fix: "the server is failing or rate-limiting; retry later (vectors already obtained are "
                        + "kept in the spool), or lower the concurrency", status: lastStatus)
            }
            sleep(delay)
        }
    }

    /// Seconds the server asks to wait: `Retry-After` (seconds or an HTTP date), else the longest
    /// `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` ("1s", "6m0s", "250ms").
    static func serverWait(_ headers: [String: String]) -> Double? {
        if let ra = headers["retry-after"]?.trimmingCharacters(in: .whitespaces) {
            if let s = Double(ra) { return max(0, s) }
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            if let d = f.date(from: ra) { return max(0, d.timeIntervalSinceNow) }
        }
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"].compactMap {
            headers[$0].flatMap(parseDuration)
        }
        return resets.max()
    }

    /// "1s", "6m0s", "1h2m3.5s", "250ms", "0.5" (seconds).
    static func parseDuration(_ text: String) -> Double? {
        let s = text.trimmingCharacters(in: .whitespaces)
        if let v = Double(s) { return v }
        var total = 0.0
        var number = ""
        var i = s.startIndex
        var any = false
        while i < s.endIndex {
            let c = s[i]
            if c.isNumber || c == "." {
                number.append(c)
                i = s.index(after: i)
                continue
            }
            guard let v = Double(number) else { return nil }
            var unit = String(c)
            let next = s.index(after: i)
            if c == "m" && next < s.endIndex && s[next] == "s" { unit = "ms" }
            switch unit {
            case "h": total += v * 3600
            case "m": total += v * 60
            case "s": total += v
            case "ms": total += v / 1000
            default: return nil
            }
            any = true
            number = ""
            i = s.index(i, offsetBy: unit.count)
        }
        if !number.isEmpty { return nil }
        return any ? total : nil
    }

    /// A rejection that means "this batch is too large": split it.
    static func saysTooLarge(_ message: String) -> Bool {
        let m = message.lowercased()
        return [
            "too many", "too large", "too long", "batch size", "exceeds", "exceeded", "maximum", "max_batch",
            "payload",
        ].contains { m.contains($0) }
    }

    private func serverMessage(_ body: Data) -> String? {
        guard let o = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
        if let e = o["error"] as? [String: Any], let m = e["message"] as? String { return m }
        if let m = o["error"] as? String { return m }
        if let m = o["message"] as? String { return m }
        return nil
    }

    /// `{"data": [{"index": i, "embedding": [..] | "base64"}], "usage": {"prompt_tokens": n}}`.
    func parse(_ body: Data, count: Int) throws -> EmbeddingBatch {
        func bad(_ what: String) -> EmbeddingError {
            EmbeddingError(
                .malformed, endpoint: settings.endpoint, message: "the answer is not an embeddings list: \(what)",
                fix: "check that the URL is an OpenAI-compatible embeddings API")
        }
        guard let o = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw bad("not a JSON object (\(body.count) bytes)")
        }
        guard let data = o["data"] as? [Any] else { throw bad("no \"data\" list") }
        guard data.count == count else { throw bad("\(data.count) vectors for \(count) inputs") }
        var vectors = [[Float]?](repeating: nil, count: count)
        for (i, item) in data.enumerated() {
            guard let d = item as? [String: Any] else { throw bad("data[\(i)] is not an object") }
            let index = (d["index"] as? Int) ?? i
            guard index >= 0, index < count, vectors[index] == nil else { throw bad("data[\(i)].index \(index)") }
            let v: [Float]
            if let s = d["embedding"] as? String {
                guard let raw = Data(base64Encoded: s), raw.count % 4 == 0, !raw.isEmpty else {
                    throw bad("data[\(i)].embedding is not base64 float32")
                }
                v = raw.withUnsafeBytes { b in
                    (0..<raw.count / 4).map {
                        let bits = b.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)
                        return Float(bitPattern: UInt32(littleEndian: bits))
                    }
                }
            } else if let a = d["embedding"] as? [Any] {
                var out: [Float] = []
                out.reserveCapacity(a.count)
                for x in a {
                    guard let n = x as? NSNumber, !(x is Bool) else {
                        throw bad("data[\(i)].embedding holds a non-number")
                    }
                    out.append(n.floatValue)
                }
                v = out
            } else {
                throw bad("data[\(i)] has no embedding")
            }
            guard !v.isEmpty, v.allSatisfy({ $0.isFinite }) else {
                throw bad("data[\(i)].embedding is empty or not finite")
            }
            vectors[index] = v
        }
        let result = vectors.map { $0! }
        let dim = settings.dimensions ?? result[0].count
        if let wrong = result.firstIndex(where: { $0.count != dim }) {
            throw EmbeddingError(
                .dimension, endpoint: settings.endpoint,
                message: "vector \(wrong) has \(result[wrong].count) values, expected \(dim)"
                    + (settings.dimensions != nil ? " (--embed-dimensions)" : " (as the batch's first)"),
                fix: "use a model of the collection's dimension, or set --embed-dimensions the model supports")
        }
        let usage = o["usage"] as? [String: Any]
        let tokens = (usage?["prompt_tokens"] as? Int) ?? (usage?["total_tokens"] as? Int) ?? 0
        return EmbeddingBatch(vectors: result, tokens: tokens)
    }
}

extension Optional where Wrapped == String {
    var orEmpty: String { self ?? "" }
}
