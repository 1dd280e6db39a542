import Foundation
import StrataCore
import StrataTestSupport
import Synchronization
import XCTest

@testable import StrataS3

/// `RefreshingCredentialsProvider` alone, with a counting fetch and a hand-moved clock.
final class CredentialRefreshTests: XCTestCase {
    final class Fetcher: Sendable {
        private struct State {
            var count = 0
            var lifetime: TimeInterval? = 3600
            var failure: StoreError?
            var gate: DispatchSemaphore?
        }
        private let state = Mutex(State())
        var lifetime: TimeInterval? {
            get { state.withLock { $0.lifetime } }
            set { state.withLock { $0.lifetime = newValue } }
        }
        var failure: StoreError? {
            get { state.withLock { $0.failure } }
            set { state.withLock { $0.failure = newValue } }
        }
        /// When set, a fetch signals `entered` and then waits for this gate: the test decides when
        /// a fetch in progress ends (no sleeps, no timing).
        var gate: DispatchSemaphore? {
            get { state.withLock { $0.gate } }
            set { state.withLock { $0.gate = newValue } }
        }
        let entered = DispatchSemaphore(value: 0)
        let clock: TestClock

        init(clock: TestClock) { self.clock = clock }

        func fetch() throws -> Credentials {
            entered.signal()
            if let gate { gate.wait() }
            let (count, lifetime) = try state.withLock { s throws -> (Int, TimeInterval?) in
                if let failure = s.failure { throw failure }
                s.count += 1
                return (s.count, s.lifetime)
            }
            return Credentials(
                accessKeyId: "KEY\(count)", secretAccessKey: "secret-\(count)",
                sessionToken: "token-\(count)",
                expiration: lifetime.map { clock.now.addingTimeInterval($0) })
        }

        var fetches: Int { state.withLock { $0.count } }
    }

    let clock = TestClock()

    func provider(_ f: Fetcher) -> RefreshingCredentialsProvider {
        RefreshingCredentialsProvider(source: "test", now: clock.function) { try f.fetch() }
    }

    func testCachesUntilFiveMinutesBeforeExpiry() throws {
        let f = Fetcher(clock: clock)
        let p = provider(f)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1")
        clock.advance(3600 - 301)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1")
        clock.advance(2)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY2")
        XCTAssertEqual(f.fetches, 2)
    }

    func testShortLifetimeRefreshesAtEightyPercent() throws {
        let f = Fetcher(clock: clock)
        f.lifetime = 100
        let p = provider(f)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1")
        clock.advance(79)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1")
        clock.advance(2)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY2")
    }

    func testLongLivedCredentialsAreFetchedOnce() throws {
        let f = Fetcher(clock: clock)
        f.lifetime = nil
        let p = provider(f)
        _ = try p.credentials()
        clock.advance(10 * 365 * 86400)
        _ = try p.credentials()
        XCTAssertEqual(f.fetches, 1)
    }

    func testFailureBeforeAnyCredentialsIsThrownAndRetriedNextCall() throws {
        let f = Fetcher(clock: clock)
        f.failure = StoreError(.transient, operation: "fetch", message: "down")
        let p = provider(f)
        XCTAssertThrowsError(try p.credentials())
        f.failure = nil
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1")
    }

    func testFailedRefreshKeepsOldCredentialsAndBacksOff() throws {
        let f = Fetcher(clock: clock)
        let p = provider(f)
        _ = try p.credentials()
        f.failure = StoreError(.transient, operation: "fetch", message: "down")
        clock.advance(3600 - 100)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1")
        f.failure = nil
        clock.advance(5)  // within the 10 s back-off: no new attempt
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1")
        XCTAssertEqual(f.fetches, 1)
        clock.advance(6)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY2")
    }

    func testConcurrentFirstCallersShareOneFetch() throws {
        let f = Fetcher(clock: clock)
        let gate = DispatchSemaphore(value: 0)
        f.gate = gate
        let p = provider(f)
        let callers = 16
        let started = DispatchGroup()
        let finished = DispatchGroup()
        for _ in 0..<callers {
            started.enter()
            finished.enter()
            Thread {
                started.leave()
                XCTAssertEqual(try? p.credentials().accessKeyId, "KEY1")
                finished.leave()
            }.start()
        }
        // The first fetch is held until every caller has started and one of them is in the fetch.
        started.wait()
        f.entered.wait()
        gate.signal()
        finished.wait()
        XCTAssertEqual(f.fetches, 1)
    }

    func testDuringRefreshOthersUseTheValidCredentials() throws {
        let f = Fetcher(clock: clock)
        let p = provider(f)
        _ = try p.credentials()
        f.entered.wait()  // the first fetch's signal
        clock.advance(3600 - 60)
        let gate = DispatchSemaphore(value: 0)
        f.gate = gate
        let refreshed = DispatchSemaphore(value: 0)
        Thread {
            _ = try? p.credentials()
            refreshed.signal()
        }.start()
        f.entered.wait()  // the refresh is in progress, and stays so until the gate opens
        // Another caller gets the still valid credentials while the refresh is held. If it were
        // blocked behind the refresh, it could not return before the gate opens (the wait below
        // only guards against hanging the suite).
        let answer = Locked<String?>(nil)
        let answered = DispatchSemaphore(value: 0)
        Thread {
            answer.update { $0 = try? p.credentials().accessKeyId }
            answered.signal()
        }.start()
        XCTAssertEqual(answered.wait(timeout: .now() + 60), .success, "blocked behind the refresh")
        XCTAssertEqual(answer.value, "KEY1", "not blocked behind the refresh")
        gate.signal()
        refreshed.wait()
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY2")
        XCTAssertEqual(f.fetches, 2)
    }
}
