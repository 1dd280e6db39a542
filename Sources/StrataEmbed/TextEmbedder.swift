import Foundation
import StrataCore
import Synchronization

/// Embeds a stream of texts into a spool: `add` collects distinct texts not yet in the spool
/// into batches (by inputs, bytes and estimated tokens), sends up to `concurrency` batches at
/// once, and writes each answer to the spool as it arrives; `finish` waits for all. Memory
/// holds at most `concurrency + 1` batches of text. A text already in the spool, or already
/// added, costs nothing. The first failure stops new batches and is thrown by `add` or `finish`.
/// Not Sendable: one thread calls `add`, `finish` and `cancel`; the batch threads share only `shared`.
public final class TextEmbedder {
    public let client: EmbeddingClient
    public let spool: EmbeddingSpool
    public let inputType: String?
    /// What the batch threads share with the caller's.
    private final class Shared: Sendable {
        /// Keys sent or to be sent whose vectors are not in the spool yet (bounded by the batches
        /// in flight); a text in the spool is known there.
        let pending = Mutex(Set<TextKey>())
        let failure = Mutex<Error?>(nil)
    }
    private let shared = Shared()
    private var counted = Set<UInt64>()
    private var batch: [(key: TextKey, text: String)] = []
    private var batchBytes = 0
    private var batchTokens = 0
    private let slots: DispatchSemaphore
    private let group = DispatchGroup()
    private let started = Date()

    public init(client: EmbeddingClient, spool: EmbeddingSpool, inputType: String?) {
        self.client = client
        self.spool = spool
        self.inputType = inputType
        slots = DispatchSemaphore(value: client.settings.concurrency)
    }

    private var settings: EmbeddingSettings { client.settings }

    /// Queues `text` (a row's) for embedding unless its vector is known. Returns its key.
    @discardableResult
    public func add(_ text: String) throws -> TextKey {
        let key = TextKey(text)
        // For the figures only (8 bytes a text): whether this text was seen before in this job.
        let first = counted.insert(key.a).inserted
        let isPending = shared.pending.withLock { $0.contains(key) }
        let known = isPending || spool.contains(key)
        client.meter.add {
            $0.inputs += 1
            if first {
                $0.uniqueTexts += 1
                if known && !isPending { $0.fromSpool += 1 }
            }
        }
        if known { return key }
        shared.pending.withLock { _ = $0.insert(key) }
        let bytes = text.utf8.count
        let tokens = EmbeddingSettings.estimatedTokens(utf8Count: bytes)
        if !batch.isEmpty
            && (batch.count >= settings.maxInputsPerRequest || batchBytes + bytes > settings.maxBytesPerRequest
                || batchTokens + tokens > settings.maxTokensPerRequest)
        {
            try flush()
        }
        batch.append((key, text))
        batchBytes += bytes
        batchTokens += tokens
        return key
    }

    private func flush() throws {
        try checkFailure()
        guard !batch.isEmpty else { return }
        let items = batch
        batch = []
        batchBytes = 0
        batchTokens = 0
        slots.wait()
        do { try checkFailure() } catch {
            slots.signal()
            throw error
        }
        group.enter()
        DispatchQueue.global().async { [client, spool, inputType, shared, slots, group] in
            defer {
                slots.signal()
                group.leave()
            }
            do {
                let result = try client.embed(items.map(\.text), inputType: inputType)
                try spool.append(zip(items, result.vectors).map { ($0.key, $1) })
                shared.pending.withLock { for i in items { $0.remove(i.key) } }
            } catch {
                shared.failure.withLock { if $0 == nil { $0 = error } }
            }
        }
    }

    private func checkFailure() throws {
        if let f = shared.failure.withLock({ $0 }) { throw f }
    }

    /// Sends what is left and waits for every batch; throws the first failure.
    public func finish() throws {
        defer {
            let s = Date().timeIntervalSince(started)
            client.meter.add { $0.seconds += s }
        }
        do { try flush() } catch {
            group.wait()
            throw error
        }
        group.wait()
        try checkFailure()
    }

    /// Waits for batches in flight (after a failure elsewhere), without throwing.
    public func cancel() {
        shared.failure.withLock { if $0 == nil { $0 = CancellationError() } }
        batch = []
        group.wait()
    }
}
