import Testing
@testable import WebClient

/// What a mail puts on the wire: a subject is one header line whatever
/// the template made of it (no header can be smuggled in), line ends are
/// CRLF, and a line that starts with a dot is not the end of the message.
@Suite struct MailTests {
    @Test func theSubjectIsOneLineAndTheBodyIsDotStuffed() {
        let mail = Mail(from: "rewind@example.com", to: ["a@example.com", "b@example.com"], subject: "api failed\r\nBcc: thief@example.com\n",
                        body: "first\n.hidden\nlast")
        #expect(mail.subject == "api failed Bcc: thief@example.com")
        let lines = mail.data.components(separatedBy: "\r\n")
        #expect(lines.contains("Subject: api failed Bcc: thief@example.com"))
        #expect(!lines.contains { $0.hasPrefix("Bcc:") })
        #expect(lines.contains("To: <a@example.com>, <b@example.com>"))
        #expect(lines.suffix(5) == ["first", "..hidden", "last", ".", ""])
    }

    /// Text from alerts and templates with CRLF line ends (one Character
    /// in Swift, neither "\r" nor "\n") ends no message early: a line that
    /// is a lone dot is doubled, so what follows it is not sent as commands.
    @Test func crlfInTheBodyCannotEndTheMessage() {
        let mail = Mail(from: "rewind@example.com", to: ["a@example.com"], subject: "s", body: "reason\r\n.\r\nRSET\r\nMAIL FROM:<thief@example.com>\rlast")
        let body = mail.data.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        #expect(body == "reason\r\n..\r\nRSET\r\nMAIL FROM:<thief@example.com>\r\nlast\r\n.\r\n")
        #expect(mail.data.components(separatedBy: "\r\n.\r\n").count == 2, "the message ends once, at its end")
    }
}
