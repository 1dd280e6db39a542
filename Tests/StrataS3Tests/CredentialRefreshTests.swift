import Foundation
import StrataCore
@testable import StrataS3
import XCTest

/// `RefreshingCredentialsProvider` alone, with a counting fetch and a hand-moved clock.
final class CredentialRefreshTests: XCTestCase {
    final class Fetcher: @unchecked Sendable {
        let lock = NSLock()
        var count = 0
        var lifetime: TimeInterval? = 3600
        var failure: StoreError?
        var delay: TimeInterval = 0
        let clock: TestClock

        init(clock: TestClock) { self.clock = clock }

        func fetch() throws -> Credentials {
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            lock.lock()
            defer { lock.unlock() }
            if let failure { throw failure }
            count += 1
            return Credentials(accessKeyId: "KEY\(count)", secretAccessKey: "secret-\(count)",
                               sessionToken: "token-\(count)",
                               expiration: lifetime.map { clock.now.addingTimeInterval($0) })
        }

        var fetches: Int {
            lock.lock()
            defer { lock.unlock() }
            return count
        }
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
        f.delay = 0.2
        let p = provider(f)
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            XCTAssertEqual(try? p.credentials().accessKeyId, "KEY1")
        }
        XCTAssertEqual(f.fetches, 1)
    }

    func testDuringRefreshOthersUseTheValidCredentials() throws {
        let f = Fetcher(clock: clock)
        let p = provider(f)
        _ = try p.credentials()
        clock.advance(3600 - 60)
        f.delay = 0.5
        let refresher = Thread { _ = try? p.credentials() }
        refresher.start()
        Thread.sleep(forTimeInterval: 0.1)
        let start = Date()
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY1", "not blocked behind the refresh")
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.3)
        Thread.sleep(forTimeInterval: 0.6)
        XCTAssertEqual(try p.credentials().accessKeyId, "KEY2")
        XCTAssertEqual(f.fetches, 2)
    }
}
