import FoundationEssentials
import SystemSupport
import WebClient

/// Where trigger queries are answered: Prometheus (`PrometheusClient`), or
/// in the reconciler's unit tests a fake.
public protocol MetricsSource: Sendable {
    /// The value of an instant query; nil when it has no data (not a breach).
    func value(of query: String) throws -> Double?
}

/// Prometheus's `/api/v1/query`.
struct PrometheusClient: MetricsSource {
    let endpoint: WebURL
    let caFile: String?

    /// The value of an instant query: the first sample of a vector, or a
    /// scalar; nil when the result is empty (no data is not a breach).
    func value(of query: String) throws -> Double? {
        let response = try WebClient.shared(caFile: caFile).request("GET", endpoint, path: "/api/v1/query?query=\(HTTPEndpoint.encode(query))", timeoutMilliseconds: 5_000)
        let answer: QueryResponse
        do {
            answer = try JSONDecoder().decode(QueryResponse.self, from: Data(response.body))
        } catch {
            throw SystemError("Prometheus answered \(response.status) with something that is not a query result")
        }
        guard answer.status == "success", let data = answer.data else {
            throw SystemError("Prometheus refused the query: \(answer.error ?? "status \(answer.status)")")
        }
        return data.value
    }

    struct QueryResponse: Decodable {
        let status: String
        let data: QueryData?
        let error: String?
    }

    struct QueryData: Decodable {
        let resultType: String
        let value: Double?

        enum Keys: String, CodingKey { case resultType, result }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            resultType = try c.decode(String.self, forKey: .resultType)
            switch resultType {
            case "vector": value = try c.decode([Sample].self, forKey: .result).first?.value.number
            case "scalar": value = try c.decode(Pair.self, forKey: .result).number
            default: value = nil
            }
        }
    }

    struct Sample: Decodable { let value: Pair }

    /// `[<unix time>, "<value>"]`.
    struct Pair: Decodable {
        let number: Double?
        init(from decoder: any Decoder) throws {
            var c = try decoder.unkeyedContainer()
            _ = try c.decode(Double.self)
            number = Double(try c.decode(String.self))
        }
    }
}

