import FoundationEssentials
import NIOCore
import NIOPosix
import NIOSSL
import SystemSupport

/// Where and how mail is sent: an SMTP server that offers STARTTLS (mail
/// is never sent, nor a password, over a connection that is not
/// encrypted), with the system's authorities plus `caFile`'s, and AUTH
/// PLAIN when a user is given.
public struct SMTPServer: Sendable {
    public let host: String
    public let port: Int
    public let user: String?
    public let password: String?
    public let caFile: String?

    public init(host: String, port: Int, user: String?, password: String?, caFile: String?) {
        (self.host, self.port, self.user, self.password, self.caFile) = (host, port, user, password, caFile)
    }

    public var description: String { "smtp://\(host):\(port)" }
}

/// One mail: sender, recipients, and the message (headers and body).
public struct Mail: Sendable {
    public let from: String
    public let to: [String]
    /// One line: a header may not span lines.
    public let subject: String
    public let body: String

    public init(from: String, to: [String], subject: String, body: String) {
        (self.from, self.to, self.subject, self.body) = (from, to, subject.oneLine, body)
    }

    /// The message as DATA sends it: headers, a blank line, the body with
    /// CRLF line ends and leading dots doubled (RFC 5321 4.5.2). Every
    /// line break counts (`isNewline`: CRLF is one Character, neither "\r"
    /// nor "\n"), so no text can end the message early.
    var data: String {
        let headers = ["From: <\(from)>", "To: " + to.map { "<\($0)>" }.joined(separator: ", "), "Subject: \(subject)",
                       "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "X-Mailer: rewind"]
        let lines = body.lines.map { $0.hasPrefix(".") ? "." + $0 : String($0) }
        return (headers + [""] + lines).joined(separator: "\r\n") + "\r\n.\r\n"
    }
}

/// A mail that was not accepted, in words: which server, at which step,
/// and what it answered (never the password).
public struct SMTPError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Sends mail over SMTP with STARTTLS. Synchronous: the notifier's thread
/// waits for the server's last answer (at most `timeoutMilliseconds`).
public enum SMTPClient {
    public static func send(_ mail: Mail, via server: SMTPServer, timeoutMilliseconds: Int64 = 15_000) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile = server.caFile {
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw SMTPError("cannot read the certificate authorities in \(caFile): \(error) (a PEM file of CA certificates)")
            }
        }
        let context: NIOSSLContext
        do { context = try NIOSSLContext(configuration: tls) } catch { throw SMTPError("cannot set up TLS for \(server.description): \(error)") }
        // One event loop for the channel, the promise and the timeout: the session completes it once, on that loop.
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: Void.self)
        let session = SMTPSession(mail: mail, server: server, tls: context, done: done)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(session) }
            }
        let channel: Channel
        do {
            channel = try bootstrap.connect(host: server.host, port: server.port).wait()
        } catch {
            throw SMTPError("cannot connect to \(server.description): \(error)")
        }
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(timeoutMilliseconds)) {
            session.finish(.failure(SMTPError("\(server.description) did not finish within \(timeoutMilliseconds) ms (timed out)")))
            channel.close(promise: nil)
        }
        defer {
            deadline.cancel()
            channel.close(promise: nil)
        }
        do {
            try done.futureResult.wait()
        } catch let error as SMTPError {
            throw error
        } catch {
            throw SMTPError("\(server.description): \(error)")
        }
    }
}

/// The conversation, one reply at a time: greeting, EHLO, STARTTLS, EHLO
/// again over TLS, AUTH PLAIN, MAIL FROM, RCPT TO each, DATA, QUIT.
final class SMTPSession: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Step: Equatable { case greeting, hello, startTLS, helloSecure, auth, mailFrom, recipient(Int), data, message, quit, finished }

    let mail: Mail
    let server: SMTPServer
    let tls: NIOSSLContext
    let done: EventLoopPromise<Void>
    private var step = Step.greeting
    /// Set once `done` is completed (on the channel's loop).
    private var completed = false
    private var pending: [UInt8] = []
    /// The lines of a multi-line reply so far (`250-...`).
    private var reply: [String] = []

    init(mail: Mail, server: SMTPServer, tls: NIOSSLContext, done: EventLoopPromise<Void>) {
        (self.mail, self.server, self.tls, self.done) = (mail, server, tls, done)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        guard pending.count <= 65_536 else { return fail(context, "sent a reply longer than 64 KiB") }
        while let end = pending.firstIndex(of: 10) {
            var line = String(decoding: pending[..<end], as: UTF8.self)
            while line.last == "\r" { line.removeLast() }
            pending.removeFirst(end + 1)
            reply.append(line)
            // "250-..." continues the reply; "250 ..." (or a bare code) ends it.
            let bytes = Array(line.utf8)
            if bytes.count > 3 && bytes[3] == UInt8(ascii: "-") { continue }
            let lines = reply
            reply = []
            guard let code = Int(String(line.prefix(3))) else { return fail(context, "answered something that is not SMTP: \(Bounded.printable(line, limit: 300))") }
            answer(context, code: code, lines: lines)
            if step == .finished { return }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(SMTPError("\(server.description) closed the connection while waiting for \(describe(step))")))
    }

    /// Completes `done` the first time; later results are dropped.
    func finish(_ result: Result<Void, SMTPError>) {
        guard !completed else { return }
        completed = true
        done.completeWith(result.mapError { $0 as any Error })
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is NIOSSLError else { return fail(context, "failed while waiting for \(describe(step)): \(error)") }
        let untrusted = "\(error)".contains("CERTIFICATE_VERIFY_FAILED")
        fail(context, "TLS failed after STARTTLS: " + (untrusted ? "its certificate is not signed by an authority Rewind trusts (pass its authority with --ca-file)" : "\(error)"))
    }

    private func answer(_ context: ChannelHandlerContext, code: Int, lines: [String]) {
        switch (step, code) {
        case (.greeting, 220):
            send(context, "EHLO rewind", next: .hello)
        case (.hello, 250):
            guard lines.contains(where: { $0.dropFirst(4).uppercased().hasPrefix("STARTTLS") }) else {
                return fail(context, "does not offer STARTTLS: Rewind sends no mail and no password without TLS")
            }
            send(context, "STARTTLS", next: .startTLS)
        case (.startTLS, 220):
            do {
                let handler = try NIOSSLClientHandler(context: tls, serverHostname: server.host.first?.isNumber == true ? nil : server.host)
                try context.pipeline.syncOperations.addHandler(handler, position: .first)
            } catch {
                return fail(context, "TLS failed: \(error)")
            }
            send(context, "EHLO rewind", next: .helloSecure)
        case (.helloSecure, 250):
            if let user = server.user {
                let plain = Array("\0\(user)\0\(server.password ?? "")".utf8)
                send(context, "AUTH PLAIN " + Data(plain).base64EncodedString(), next: .auth)
            } else {
                send(context, "MAIL FROM:<\(mail.from)>", next: .mailFrom)
            }
        case (.auth, 235):
            send(context, "MAIL FROM:<\(mail.from)>", next: .mailFrom)
        case (.mailFrom, 250):
            send(context, "RCPT TO:<\(mail.to[0])>", next: .recipient(0))
        case (.recipient(let i), 250), (.recipient(let i), 251):
            if i + 1 < mail.to.count { send(context, "RCPT TO:<\(mail.to[i + 1])>", next: .recipient(i + 1)) } else { send(context, "DATA", next: .data) }
        case (.data, 354):
            step = .message
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: mail.data)), promise: nil)
        case (.message, 250):
            send(context, "QUIT", next: .quit)
            finish(.success(()))
        case (.quit, _):
            step = .finished
            context.close(promise: nil)
        default:
            fail(context, "refused \(describe(step)): \(Bounded.printable(lines.last ?? String(code), limit: 300))")
        }
    }

    private func send(_ context: ChannelHandlerContext, _ line: String, next: Step) {
        step = next
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: line + "\r\n")), promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ why: String) {
        guard step != .finished else { return }
        step = .finished
        finish(.failure(SMTPError("\(server.description) \(why)")))
        context.close(promise: nil)
    }

    /// The step in words, for errors (the AUTH line itself is never shown).
    private func describe(_ step: Step) -> String {
        switch step {
        case .greeting: "the greeting"
        case .hello, .helloSecure: "EHLO"
        case .startTLS: "STARTTLS"
        case .auth: "the sign-in (AUTH PLAIN as \(server.user ?? "?"))"
        case .mailFrom: "the sender \(mail.from)"
        case .recipient(let i): "the recipient \(mail.to[i])"
        case .data, .message: "the message"
        case .quit, .finished: "QUIT"
        }
    }

}
