import Foundation
import Synchronization

/// How texts are embedded through an OpenAI-compatible `POST {baseURL}/embeddings`
/// (Docs/OPERATIONS.md, "Embeddings"). Values only. The API key is held here but never appears
/// in `description`, logs or errors.
public struct EmbeddingSettings: Sendable, Equatable, CustomStringConvertible {
    public static let defaultBaseURL = "https://api.openai.com/v1"
    public static let defaultModel = "text-embedding-3-small"

    /// For example `http://127.0.0.1:8080/v1`; `/embeddings` is appended.
    public var baseURL: String
    /// Sent as `Authorization: Bearer ...`; nil for local servers that need none.
    public var apiKey: String?
    public var model: String
    /// Sent as `dimensions` when set (models that can shorten their vectors); every answer must
    /// have this many values.
    public var dimensions: Int?
    /// `input_type` sent with texts to store (e5-style models: "passage"); nil sends none.
    public var passageInputType: String?
    /// `input_type` sent with a query (`snapctl query --text`; e5-style models: "query").
    public var queryInputType: String?
    /// Ask for base64 vectors (no float parsing); answers with float arrays are accepted too.
    public var preferBase64: Bool

    /// At most this many inputs a request (OpenAI allows 2048; text-embeddings-inference 32).
    public var maxInputsPerRequest: Int
    /// At most this many bytes of input text a request (text-embeddings-inference: 2 MB).
    public var maxBytesPerRequest: Int
    /// At most this many tokens a request, estimated from the bytes (OpenAI: 300,000).
    public var maxTokensPerRequest: Int
    /// Requests in flight at once.
    public var concurrency: Int

    /// One request's timeout, seconds.
    public var requestTimeout: Double
    /// Attempts per batch (the first and the retries) on 429, 5xx, resets and timeouts.
    public var maxAttempts: Int
    /// A batch gives up when its retries would take longer than this, seconds.
    public var maxRetryTime: Double
    /// The first backoff, seconds; doubled per attempt with full jitter, capped at `maxBackoff`.
    public var initialBackoff: Double
    public var maxBackoff: Double

    public init(
        baseURL: String = EmbeddingSettings.defaultBaseURL, apiKey: String? = nil,
        model: String = EmbeddingSettings.defaultModel, dimensions: Int? = nil,
        passageInputType: String? = nil, queryInputType: String? = nil, preferBase64: Bool = true,
        maxInputsPerRequest: Int = 256, maxBytesPerRequest: Int = 1 << 20, maxTokensPerRequest: Int = 300_000,
        concurrency: Int = 2, requestTimeout: Double = 120, maxAttempts: Int = 8, maxRetryTime: Double = 600,
        initialBackoff: Double = 0.5, maxBackoff: Double = 30
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.model = model
        self.dimensions = dimensions
        self.passageInputType = passageInputType
        self.queryInputType = queryInputType
        self.preferBase64 = preferBase64
        self.maxInputsPerRequest = maxInputsPerRequest
        self.maxBytesPerRequest = maxBytesPerRequest
        self.maxTokensPerRequest = maxTokensPerRequest
        self.concurrency = concurrency
        self.requestTimeout = requestTimeout
        self.maxAttempts = maxAttempts
        self.maxRetryTime = maxRetryTime
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// The settings from the environment's conventions: `OPENAI_BASE_URL`, `OPENAI_API_KEY`,
    /// `STRATA_EMBED_MODEL`, `STRATA_EMBED_DIMENSIONS`, `STRATA_EMBED_INPUT_TYPES`
    /// ("passage,query", or "none"). Flags given by the caller override these.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment)
        -> EmbeddingSettings
    {
        var s = EmbeddingSettings()
        if let u = env["OPENAI_BASE_URL"], !u.isEmpty { s.baseURL = u }
        if let k = env["OPENAI_API_KEY"], !k.isEmpty { s.apiKey = k }
        if let m = env["STRATA_EMBED_MODEL"], !m.isEmpty { s.model = m }
        if let d = env["STRATA_EMBED_DIMENSIONS"].flatMap({ Int($0) }) { s.dimensions = d }
        if let t = env["STRATA_EMBED_INPUT_TYPES"] { s.setInputTypes(t) }
        return s
    }

    /// "passage,query" (the e5 convention), "none" or "" (send no input_type).
    public mutating func setInputTypes(_ spec: String) {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        if spec.trimmingCharacters(in: .whitespaces).isEmpty || spec == "none" {
            passageInputType = nil
            queryInputType = nil
            return
        }
        passageInputType = parts[0].isEmpty ? nil : parts[0]
        queryInputType = parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil
    }

    /// `{baseURL}/embeddings`.
    public var endpoint: String {
        var b = baseURL
        while b.hasSuffix("/") { b.removeLast() }
        return b + "/embeddings"
    }

    /// What identifies the vectors a text gets (the model, its dimensions and the input type;
    /// not the URL, which may name another replica of the same model): the spool keeps one file
    /// per value of this.
    public func vectorsKey(inputType: String?) -> String {
        "\(model)\n\(dimensions.map(String.init) ?? "-")\n\(inputType ?? "-")"
    }

    /// Every problem with the values, or nil.
    public var problem: String? {
        guard baseURL.hasPrefix("http://") || baseURL.hasPrefix("https://") else {
            return "the embeddings URL \"\(baseURL)\" must start with http:// or https://"
        }
        if model.isEmpty { return "the embedding model is empty" }
        if let d = dimensions, !(1...65536).contains(d) { return "the embedding dimensions \(d) must be 1 to 65536" }
        if maxInputsPerRequest < 1 { return "at most \(maxInputsPerRequest) inputs a request: must be at least 1" }
        if maxBytesPerRequest < 1 { return "at most \(maxBytesPerRequest) bytes a request: must be at least 1" }
        if maxTokensPerRequest < 1 { return "at most \(maxTokensPerRequest) tokens a request: must be at least 1" }
        if concurrency < 1 { return "requests in flight \(concurrency): must be at least 1" }
        if maxAttempts < 1 { return "attempts \(maxAttempts): must be at least 1" }
        if requestTimeout <= 0 || maxRetryTime < 0 { return "timeouts must be positive" }
        return nil
    }

    /// A conservative token estimate for a text (no tokenizer here): one token per 3 bytes, at
    /// least 1. The server's `usage` gives the real count.
    public static func estimatedTokens(utf8Count: Int) -> Int { utf8Count / 3 + 1 }

    /// The settings without the key.
    public var description: String {
        "\(endpoint) model \(model)" + (dimensions.map { " dimensions \($0)" } ?? "")
            + " key " + (apiKey == nil ? "none" : "set")
    }

    public static func == (a: EmbeddingSettings, b: EmbeddingSettings) -> Bool {
        a.description == b.description && a.apiKey == b.apiKey && a.passageInputType == b.passageInputType
            && a.queryInputType == b.queryInputType && a.preferBase64 == b.preferBase64
            && a.maxInputsPerRequest == b.maxInputsPerRequest && a.maxBytesPerRequest == b.maxBytesPerRequest
            && a.maxTokensPerRequest == b.maxTokensPerRequest && a.concurrency == b.concurrency
            && a.requestTimeout == b.requestTimeout && a.maxAttempts == b.maxAttempts
            && a.maxRetryTime == b.maxRetryTime
    }
}

/// What embedding cost: counted as it happens, thread-safe; `snapshot` reads it.
public final class EmbeddingMeter: Sendable {
    private let value = Mutex(EmbeddingStats())

    public init() {}

    public var snapshot: EmbeddingStats { value.withLock { $0 } }

    func add(_ change: (inout EmbeddingStats) -> Void) {
        value.withLock { change(&$0) }
    }
}

/// Embedding figures of a job or a process (Docs/OPERATIONS.md).
public struct EmbeddingStats: Sendable, Equatable, Codable {
    /// Rows that needed a vector from their text.
    public var inputs = 0
    /// Distinct texts among them.
    public var uniqueTexts = 0
    /// Texts whose vector was already in the spool (paid for by an earlier attempt).
    public var fromSpool = 0
    /// Texts sent to the server (successful requests only).
    public var embedded = 0
    /// `usage.prompt_tokens` summed (or `total_tokens` when that is all the server gives).
    public var tokens = 0
    /// HTTP requests sent, including failed ones and retries.
    public var requests = 0
    /// Requests that were retries (after 429, 5xx, a reset or a timeout).
    public var retries = 0
    /// Batches split in two after the server rejected them as too large.
    public var splits = 0
    /// Wall-clock seconds spent embedding.
    public var seconds = 0.0
    /// Seconds spent waiting for the server's answers, summed over requests (with concurrency 1,
    /// `seconds - requestSeconds` is the producer's own share of the embedding time).
    public var requestSeconds = 0.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case inputs
        case uniqueTexts = "unique_texts"
        case fromSpool = "from_spool"
        case embedded, tokens, requests, retries, splits, seconds
        case requestSeconds = "request_seconds"
    }

    /// The difference `self - earlier`, for one job's share of a process's meter.
    public func since(_ earlier: EmbeddingStats) -> EmbeddingStats {
        var d = EmbeddingStats()
        d.inputs = inputs - earlier.inputs
        d.uniqueTexts = uniqueTexts - earlier.uniqueTexts
        d.fromSpool = fromSpool - earlier.fromSpool
        d.embedded = embedded - earlier.embedded
        d.tokens = tokens - earlier.tokens
        d.requests = requests - earlier.requests
        d.retries = retries - earlier.retries
        d.splits = splits - earlier.splits
        d.seconds = seconds - earlier.seconds
        d.requestSeconds = requestSeconds - earlier.requestSeconds
        return d
    }

    /// One line for a summary: "embedded 120 inputs (118 distinct texts, 0 from the spool), 1510 tokens,
    /// 2 requests, 0 retries, 1.9 s".
    public var summary: String {
        "embedded \(inputs) inputs (\(uniqueTexts) distinct texts, \(fromSpool) from the spool), \(tokens) tokens, "
            + "\(requests) requests, \(retries) retries, " + String(format: "%.1f s", seconds)
    }
}
