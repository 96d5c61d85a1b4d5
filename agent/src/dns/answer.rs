//! The proxy's own responses: decoding a client's query, answering mesh hosts
//! from the snapshot, error replies, and truncation for UDP.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::DnsError;

/// TTL of mesh-host answers, as ztunnel uses: short, so a changed VIP
/// reaches clients quickly.
pub(crate) const MESH_TTL: u32 = 30;

/// UDP payload size the proxy advertises in its own EDNS records (the
/// DNS flag day 2020 value: no IP fragmentation on common paths).
const EDNS_PAYLOAD: u16 = 1232;

/// A client message, sorted by what the proxy can do with it.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A standard query with exactly one question.
    Query(Message),
    /// Not answerable as asked; this error reply goes back instead.
    Reject(Vec<u8>),
}

/// Decodes a client's message. Errors mean "drop it": without a header there
/// is no ID to reply to, and replying to responses could start a loop.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, DnsError> {
    let header = Header::read(&mut BinDecoder::new(bytes))
        .map_err(|e| DnsError::Malformed(format!("header: {e}")))?;
    if header.message_type() != MessageType::Query {
        return Err(DnsError::Malformed("a response, not a query".into()));
    }
    let message = match Message::from_vec(bytes) {
        Ok(message) => message,
        Err(_) => return error_reply(&header, ResponseCode::FormErr).map(Decoded::Reject),
    };
    if message.op_code() != OpCode::Query {
        return error_reply(&header, ResponseCode::NotImp).map(Decoded::Reject);
    }
    // Nobody implements several questions per message; RFC 9619 says FORMERR.
    if message.queries().len() != 1 {
        return error_reply(&header, ResponseCode::FormErr).map(Decoded::Reject);
    }
    Ok(Decoded::Query(message))
}

/// An empty reply carrying `code`, for a query whose header is known.
pub(crate) fn error_reply(query: &Header, code: ResponseCode) -> Result<Vec<u8>, DnsError> {
    let mut header = Header::response_from_request(query);
    header.set_recursion_available(true).set_response_code(code);
    let mut reply = Message::new();
    reply.set_header(header);
    reply.to_vec().map_err(DnsError::Encode)
}

/// SERVFAIL for a decoded query, with its question echoed.
pub(crate) fn servfail(query: &Message) -> Result<Vec<u8>, DnsError> {
    let mut reply = reply_to(query);
    reply.set_response_code(ResponseCode::ServFail);
    reply.to_vec().map_err(DnsError::Encode)
}

/// The authoritative answer for a mesh host: its VIPs of the asked family,
/// or NOERROR with no records (never NXDOMAIN: the name exists, and a
/// negative answer would make clients skip the other family).
pub(crate) fn mesh_answer(
    query: &Message,
    v4: &[Ipv4Addr],
    v6: &[Ipv6Addr],
) -> Result<Vec<u8>, DnsError> {
    let mut reply = reply_to(query);
    reply.set_authoritative(true);
    if let Some(question) = query.query() {
        // Echo the name as the client spelled it (0x20 case randomisation).
        let name = question.name().clone();
        let rdata: Vec<RData> = match question.query_type() {
            RecordType::A => v4.iter().map(|ip| RData::A(A(*ip))).collect(),
            RecordType::AAAA => v6.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect(),
            _ => Vec::new(),
        };
        for data in rdata {
            reply.add_answer(Record::from_rdata(name.clone(), MESH_TTL, data));
        }
    }
    reply.to_vec().map_err(DnsError::Encode)
}

/// The largest UDP reply the client accepts: 512 bytes, or its EDNS size.
pub(crate) fn udp_limit(query: &Message) -> usize {
    usize::from(query.max_payload())
}

/// `response` if it fits in `limit`, else a reply with TC set, the question
/// and no records, so the client retries over TCP.
pub(crate) fn truncate(
    response: Vec<u8>,
    query: &Message,
    limit: usize,
) -> Result<Vec<u8>, DnsError> {
    if response.len() <= limit {
        return Ok(response);
    }
    let mut reply = reply_to(query);
    // Keep the upstream's rcode and flags; the ID is the one already in
    // `response` (the caller restored the client's).
    if let Ok(upstream) = Header::read(&mut BinDecoder::new(&response)) {
        let mut header = upstream;
        header.set_query_count(0).set_answer_count(0);
        header.set_name_server_count(0).set_additional_count(0);
        reply.set_header(header);
    }
    reply.set_truncated(true);
    reply.to_vec().map_err(DnsError::Encode)
}

/// A response skeleton for `query`: same ID and question, RD echoed, RA set
/// (the proxy recurses through its upstreams), EDNS if the client used it.
fn reply_to(query: &Message) -> Message {
    let mut header = Header::response_from_request(query.header());
    header.set_recursion_available(true);
    let mut reply = Message::new();
    reply.set_header(header);
    reply.add_queries(query.queries().iter().cloned());
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, rtype: RecordType) -> Message {
        let mut message = Message::new();
        message
            .set_id(0xabcd)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        message
    }

    fn decoded(bytes: &[u8]) -> Message {
        match decode(bytes).unwrap() {
            Decoded::Query(message) => message,
            Decoded::Reject(reply) => panic!("rejected: {:?}", Message::from_vec(&reply)),
        }
    }

    fn rejected(bytes: &[u8]) -> Message {
        match decode(bytes).unwrap() {
            Decoded::Reject(reply) => Message::from_vec(&reply).unwrap(),
            Decoded::Query(message) => panic!("accepted: {message:?}"),
        }
    }

    #[test]
    fn decode_sorts_messages() {
        let good = query("a.test.", RecordType::A).to_vec().unwrap();
        assert_eq!(decoded(&good).id(), 0xabcd);

        assert!(decode(&good[..11]).is_err(), "no header: dropped");
        let mut response = query("a.test.", RecordType::A);
        response.set_message_type(MessageType::Response);
        assert!(
            decode(&response.to_vec().unwrap()).is_err(),
            "responses dropped"
        );

        let reply = rejected(&good[..good.len() - 1]);
        assert_eq!(reply.response_code(), ResponseCode::FormErr);
        assert_eq!(reply.id(), 0xabcd);
        assert!(reply.recursion_desired());

        let mut notify = query("a.test.", RecordType::SOA);
        notify.set_op_code(OpCode::Notify);
        let reply = rejected(&notify.to_vec().unwrap());
        assert_eq!(reply.response_code(), ResponseCode::NotImp);
        assert_eq!(reply.op_code(), OpCode::Notify);

        let mut none = query("a.test.", RecordType::A);
        none.take_queries();
        assert_eq!(
            rejected(&none.to_vec().unwrap()).response_code(),
            ResponseCode::FormErr
        );
    }

    #[test]
    fn mesh_answers_are_authoritative_with_a_30s_ttl() {
        let v4 = [
            "240.240.0.2".parse().unwrap(),
            "240.240.0.7".parse().unwrap(),
        ];
        let v6 = ["2001:2::2".parse().unwrap()];
        let ask = query("HttpBin.org.", RecordType::A);
        let reply = Message::from_vec(&mesh_answer(&ask, &v4, &v6).unwrap()).unwrap();
        assert_eq!(reply.id(), 0xabcd);
        assert_eq!(reply.message_type(), MessageType::Response);
        assert!(reply.authoritative() && reply.recursion_desired() && reply.recursion_available());
        assert_eq!(reply.queries(), ask.queries());
        let got: Vec<_> = reply
            .answers()
            .iter()
            .map(|r| (r.ttl(), r.data().cloned()))
            .collect();
        assert_eq!(
            got,
            v4.iter()
                .map(|ip| (MESH_TTL, Some(RData::A(A(*ip)))))
                .collect::<Vec<_>>()
        );
        assert_eq!(reply.answers()[0].name().to_ascii(), "HttpBin.org.");

        let ask = query("httpbin.org.", RecordType::AAAA);
        let reply = Message::from_vec(&mesh_answer(&ask, &v4, &v6).unwrap()).unwrap();
        assert_eq!(reply.answers().len(), 1);
        assert_eq!(reply.answers()[0].data(), Some(&RData::AAAA(AAAA(v6[0]))));

        let ask = query("httpbin.org.", RecordType::AAAA);
        let reply = Message::from_vec(&mesh_answer(&ask, &v4, &[]).unwrap()).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(reply.answers().is_empty());
    }

    #[test]
    fn edns_is_answered_with_edns() {
        let mut ask = query("httpbin.org.", RecordType::A);
        assert!(Message::from_vec(&mesh_answer(&ask, &[], &[]).unwrap())
            .unwrap()
            .extensions()
            .is_none());
        ask.set_edns(Edns::new());
        let reply = Message::from_vec(&mesh_answer(&ask, &[], &[]).unwrap()).unwrap();
        assert_eq!(reply.max_payload(), EDNS_PAYLOAD);
    }

    #[test]
    fn udp_limit_is_512_or_the_clients_edns_size() {
        let mut ask = query("a.test.", RecordType::A);
        assert_eq!(udp_limit(&ask), 512);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        ask.set_edns(edns.clone());
        assert_eq!(udp_limit(&ask), 4096);
        edns.set_max_payload(100);
        ask.set_edns(edns);
        assert_eq!(udp_limit(&ask), 512, "never below 512");
    }

    #[test]
    fn oversized_replies_are_truncated_keeping_id_rcode_and_question() {
        let ask = query("big.test.", RecordType::TXT);
        let mut big = Message::new();
        big.set_id(0xabcd)
            .set_message_type(MessageType::Response)
            .set_response_code(ResponseCode::NXDomain)
            .set_recursion_available(true)
            .add_queries(ask.queries().iter().cloned());
        let name = ask.queries()[0].name().clone();
        for i in 0..40u8 {
            let ip = Ipv4Addr::new(192, 0, 2, i);
            big.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(ip))));
        }
        let big = big.to_vec().unwrap();
        assert!(big.len() > 512);

        assert_eq!(
            truncate(big.clone(), &ask, 65_535).unwrap(),
            big,
            "fits: untouched"
        );
        let small = truncate(big, &ask, 512).unwrap();
        assert!(small.len() <= 512);
        let reply = Message::from_vec(&small).unwrap();
        assert!(reply.truncated());
        assert_eq!(reply.id(), 0xabcd);
        assert_eq!(reply.response_code(), ResponseCode::NXDomain);
        assert_eq!(reply.queries(), ask.queries());
        assert!(reply.answers().is_empty());
    }

    #[test]
    fn servfail_echoes_the_question() {
        let ask = query("down.test.", RecordType::A);
        let reply = Message::from_vec(&servfail(&ask).unwrap()).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::ServFail);
        assert_eq!(reply.queries(), ask.queries());
        assert_eq!(reply.id(), 0xabcd);
    }
}
