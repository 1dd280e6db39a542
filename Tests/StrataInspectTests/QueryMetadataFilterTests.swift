import Foundation
import XCTest

@testable import StrataInspect

/// `--where key=value` against metadata JSON: typed by the metadata's value.
final class QueryMetadataFilterTests: XCTestCase {
    func f(_ exprs: String...) throws -> MetadataFilter { try MetadataFilter(parsing: exprs) }

    func testTypedComparisons() throws {
        let m = #"{"has_price":true,"image_id":"abc","receipt_id":1,"total":12.50,"code":"007","neg":-0,"flag":false}"#
        XCTAssertTrue(try f("has_price=true").matches(m))
        XCTAssertFalse(try f("has_price=false").matches(m))
        XCTAssertTrue(try f("flag=false").matches(m))
        XCTAssertFalse(try f("has_price=1").matches(m), "a boolean is not the number 1")
        XCTAssertTrue(try f("receipt_id=1").matches(m))
        XCTAssertTrue(try f("receipt_id=1.0").matches(m), "numbers compare by value")
        XCTAssertTrue(try f("receipt_id=1e0").matches(m))
        XCTAssertFalse(try f("receipt_id=2").matches(m))
        XCTAssertFalse(try f("receipt_id=true").matches(m))
        XCTAssertFalse(try f("receipt_id=\"1\"").matches(m), "a quoted value matches strings only")
        XCTAssertTrue(try f("total=12.5").matches(m))
        XCTAssertTrue(try f("neg=0").matches(m))
        XCTAssertTrue(try f("image_id=abc").matches(m))
        XCTAssertTrue(try f("image_id=\"abc\"").matches(m))
        XCTAssertFalse(try f("image_id=ABC").matches(m))
        XCTAssertFalse(try f("image_id=abc ").matches(m))
        XCTAssertTrue(try f("code=007").matches(m), "strings compare as written")
        XCTAssertFalse(try f("code=7").matches(m))
        XCTAssertFalse(try f("missing=1").matches(m))
        XCTAssertTrue(try f("has_price=true", "receipt_id=1", "image_id=abc").matches(m), "AND")
        XCTAssertFalse(try f("has_price=true", "receipt_id=2").matches(m), "AND")
        XCTAssertTrue(try f().matches(m), "no condition matches everything")
        XCTAssertTrue(try f().matches(nil as String?))
    }

    func testStringsThatLookLikeOtherTypes() throws {
        let m = #"{"receipt_id":"1","has_price":"true","empty":""}"#
        XCTAssertTrue(try f("receipt_id=1").matches(m), "a string \"1\" matches 1 as text")
        XCTAssertTrue(try f("has_price=true").matches(m))
        XCTAssertTrue(try f("empty=").matches(m))
        XCTAssertFalse(try f("receipt_id=1.0").matches(m), "text is not compared as a number")
    }

    func testValueMaySplitAtTheFirstEqualsOnly() throws {
        let filter = try f("expr=a=b")
        XCTAssertEqual(filter.conditions.first?.key, "expr")
        XCTAssertEqual(filter.conditions.first?.value, "a=b")
        XCTAssertTrue(filter.matches(#"{"expr":"a=b"}"#))
    }

    func testBigIntegersCompareExactly() throws {
        let m = #"{"id":12345678901234567891}"#
        XCTAssertTrue(try f("id=12345678901234567891").matches(m))
        XCTAssertFalse(try f("id=12345678901234567890").matches(m), "would be equal as float64")
    }

    func testEscapesNestedAndMalformed() throws {
        XCTAssertTrue(try f("näme=é \"q\"").matches(#"{"n\u00e4me":"\u00e9 \"q\""}"#))
        XCTAssertTrue(try f("emoji=😀").matches(#"{"emoji":"\ud83d\ude00"}"#))
        XCTAssertTrue(
            try f("k=v").matches(" { \"a\" : [1, {\"k\": \"v\"}], \"o\": {\"x\": \"]\"}, \"k\" : \"v\" } "),
            "nested values are skipped, whitespace allowed")
        XCTAssertFalse(try f("a=1").matches(#"{"a":[1]}"#), "a nested value never matches")
        XCTAssertFalse(try f("a=null").matches(#"{"a":null}"#))
        for bad in ["", "[]", "{", #"{"b":1"#, #"{"a" 1}"#, "not json", #"{"k":"v"} trailing"#] {
            XCTAssertFalse(try f("a=1").matches(bad), bad)
        }
        // Parsing stops as soon as every condition holds: a damaged tail is not looked at.
        XCTAssertTrue(try f("a=1").matches(#"{"a":1,"#))
    }

    func testDescription() throws {
        XCTAssertEqual(try f("a=1", "b=\"x\"").description, "a=1 AND b=\"x\"")
    }
}
