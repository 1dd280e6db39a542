import Foundation

/// Exponential backoff with full jitter, bounded in attempts and in total time. The one retry
/// setting of Strata: `RetryingStore` applies it to any store, and `S3Store` applies the same
/// value to its own transport-level retries (which re-sign, refresh credentials and resend file
/// bodies, and resolve an ambiguous conditional write with the write id they sent).
public struct RetryPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Attempts in all, the first one included (1: no retry).
    public var maxAttempts: Int = 6
    public var baseDelay: Double = 0.2
    public var maxDelay: Double = 10
    /// No retry starts after this many seconds since the first attempt.
    public var maxTotalTime: Double = 120

    public init(maxAttempts: Int = 6, baseDelay: Double = 0.2, maxDelay: Double = 10, maxTotalTime: Double = 120) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxTotalTime = maxTotalTime
    }

    /// Full jitter: a random delay in [0, min(maxDelay, base * 2^attempt)].
    public func delay(afterAttempt attempt: Int) -> Double {
        let cap = max(0, min(maxDelay, baseDelay * pow(2, Double(min(attempt, 62)))))
        return Double.random(in: 0...cap)
    }

    public var description: String {
        "at most \(maxAttempts) attempts within \(maxTotalTime) s, full-jitter backoff from \(baseDelay) s "
            + "up to \(maxDelay) s"
    }
}
