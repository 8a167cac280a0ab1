//! A neighbor state read in place: every string borrowed from the received buffer.
//!
//! Written by hand because prost decodes strings into owned `String`s: a neighbor state is eight
//! of them, so a 1M-neighbor goal state cost eight million allocations and frees, half of the
//! agent's time, for values the agent only parses (addresses) or looks up (ids). Only what the
//! wire format allows and prost would accept in the same way is read here; anything else (a
//! field with an unexpected wire type, a configuration given twice, which protobuf merges) makes
//! [`NeighborRef::parse`] give up, and the caller decodes that entry with prost instead.

use alcor_schema::NeighborConfiguration;
use alcor_schema::neighbor_configuration::FixedIp;
use bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

/// One `NeighborState` (a map entry of GoalStateV2 field 7), borrowed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NeighborRef<'a> {
    /// `operation_type`, as sent.
    pub operation_type: i32,
    /// `configuration.id`.
    pub id: &'a str,
    /// `configuration.vpc_id`.
    pub vpc_id: &'a str,
    /// `configuration.mac_address`.
    pub mac_address: &'a str,
    /// `configuration.host_mac_address`.
    pub host_mac_address: &'a str,
    /// `configuration.host_ip_address`.
    pub host_ip_address: &'a str,
    /// Where the fixed IPs are read from.
    fixed: Fixed<'a>,
}

/// The fixed IPs of a [`NeighborRef`]: still encoded (read in place), or a decoded list.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fixed<'a> {
    /// The encoded configuration; its field 10 entries.
    Wire(&'a [u8]),
    /// A configuration prost decoded.
    Decoded(&'a [FixedIp]),
}

impl Default for Fixed<'_> {
    fn default() -> Self {
        Fixed::Wire(&[])
    }
}

/// One `NeighborConfiguration.FixedIp`, borrowed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FixedIpRef<'a> {
    /// `neighbor_type`, as sent (0 = L2).
    pub neighbor_type: i32,
    /// `subnet_id`.
    pub subnet_id: &'a str,
    /// `ip_address`.
    pub ip_address: &'a str,
    /// `tunnel_id`.
    pub tunnel_id: u32,
}

/// Why the fast path gave up; the caller asks prost, which either decodes the entry or says
/// what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFast;

impl From<prost::DecodeError> for NotFast {
    fn from(_: prost::DecodeError) -> Self {
        NotFast
    }
}

/// The next length-delimited value of `buf`, advancing past it.
fn delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], NotFast> {
    let len = decode_varint(buf)? as usize;
    if len > buf.len() {
        return Err(NotFast);
    }
    let (value, rest) = buf.split_at(len);
    *buf = rest;
    Ok(value)
}

fn string<'a>(buf: &mut &'a [u8], wire: WireType) -> Result<&'a str, NotFast> {
    std::str::from_utf8(message(buf, wire)?).map_err(|_| NotFast)
}

/// An embedded message (or any length-delimited value).
fn message<'a>(buf: &mut &'a [u8], wire: WireType) -> Result<&'a [u8], NotFast> {
    if wire != WireType::LengthDelimited {
        return Err(NotFast);
    }
    delimited(buf)
}

/// An embedded message that must appear at most once: protobuf merges repeats, which only
/// prost does.
fn once<'a>(slot: &mut Option<&'a [u8]>, buf: &mut &'a [u8], wire: WireType) -> Result<(), NotFast> {
    if slot.replace(message(buf, wire)?).is_some() {
        return Err(NotFast);
    }
    Ok(())
}

fn varint(buf: &mut &[u8], wire: WireType) -> Result<u64, NotFast> {
    if wire != WireType::Varint {
        return Err(NotFast);
    }
    Ok(decode_varint(buf)?)
}

fn skip(buf: &mut &[u8], wire: WireType, tag: u32) -> Result<(), NotFast> {
    Ok(skip_field(wire, tag, buf, DecodeContext::default())?)
}

/// Calls `field` for each field of the message `buf`, with its tag, wire type and the buffer
/// positioned at its value; `field` must consume the value (or [`skip`] it).
fn fields<'a>(
    mut buf: &'a [u8],
    mut field: impl FnMut(u32, WireType, &mut &'a [u8]) -> Result<(), NotFast>,
) -> Result<(), NotFast> {
    while buf.has_remaining() {
        let (tag, wire) = decode_key(&mut buf)?;
        field(tag, wire, &mut buf)?;
    }
    Ok(())
}

impl<'a> NeighborRef<'a> {
    /// Reads one map entry (`key` = 1, `value` = 2: the `NeighborState`), checking everything
    /// prost would check, fixed IPs and address pairs included.
    pub fn parse(entry: &'a [u8]) -> Result<Self, NotFast> {
        let mut state = None;
        fields(entry, |tag, wire, buf| match tag {
            1 => string(buf, wire).map(drop),
            2 => once(&mut state, buf, wire),
            _ => skip(buf, wire, tag),
        })?;
        let mut out = Self::default();
        let mut config = None;
        fields(state.unwrap_or_default(), |tag, wire, buf| match tag {
            1 => varint(buf, wire).map(|v| out.operation_type = v as i32),
            2 => once(&mut config, buf, wire),
            _ => skip(buf, wire, tag),
        })?;
        let config = config.unwrap_or_default();
        out.fixed = Fixed::Wire(config);
        fields(config, |tag, wire, buf| {
            match tag {
                1 | 4 => drop(varint(buf, wire)?),
                2 | 6 => drop(string(buf, wire)?),
                3 => out.id = string(buf, wire)?,
                5 => out.vpc_id = string(buf, wire)?,
                7 => out.mac_address = string(buf, wire)?,
                8 => out.host_mac_address = string(buf, wire)?,
                9 => out.host_ip_address = string(buf, wire)?,
                10 => drop(FixedIpRef::parse(message(buf, wire)?)?),
                // allow_address_pairs: ip_address = 1, mac_address = 2.
                11 => fields(message(buf, wire)?, |tag, wire, buf| match tag {
                    1 | 2 => string(buf, wire).map(drop),
                    _ => skip(buf, wire, tag),
                })?,
                _ => skip(buf, wire, tag)?,
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// A decoded neighbor state seen the same way.
    pub fn from_decoded(operation_type: i32, cfg: &'a NeighborConfiguration) -> Self {
        Self {
            operation_type,
            id: &cfg.id,
            vpc_id: &cfg.vpc_id,
            mac_address: &cfg.mac_address,
            host_mac_address: &cfg.host_mac_address,
            host_ip_address: &cfg.host_ip_address,
            fixed: Fixed::Decoded(&cfg.fixed_ips),
        }
    }

    /// The fixed IPs, in wire order (checked by [`NeighborRef::parse`]).
    pub fn fixed_ips(&self) -> impl Iterator<Item = FixedIpRef<'a>> + 'a {
        let (mut wire, decoded) = match self.fixed {
            Fixed::Wire(b) => (b, [].iter()),
            Fixed::Decoded(list) => (&[][..], list.iter()),
        };
        let from_wire = std::iter::from_fn(move || {
            while wire.has_remaining() {
                let (tag, kind) = decode_key(&mut wire).ok()?;
                if tag == 10 {
                    return FixedIpRef::parse(delimited(&mut wire).ok()?).ok();
                }
                skip(&mut wire, kind, tag).ok()?;
            }
            None
        });
        from_wire.chain(decoded.map(|f| FixedIpRef {
            neighbor_type: f.neighbor_type,
            subnet_id: &f.subnet_id,
            ip_address: &f.ip_address,
            tunnel_id: f.tunnel_id,
        }))
    }

    /// The first fixed IP's neighbor type (L2 when there is none), as the agent keys it.
    pub fn kind(&self) -> alcor_schema::NeighborType {
        self.fixed_ips()
            .next()
            .and_then(|f| alcor_schema::NeighborType::try_from(f.neighbor_type).ok())
            .unwrap_or(alcor_schema::NeighborType::L2)
    }
}

/// Checks one `host_resources` map entry (key: host IP; value: `HostResources`, a list of
/// `ResourceIdType`) in place. The agent does not use the listing (it applies what the message
/// carries), but a message whose listing would not decode must still fail as a whole.
pub fn check_host_resources(entry: &[u8]) -> Result<(), NotFast> {
    fields(entry, |tag, wire, buf| match tag {
        1 => string(buf, wire).map(drop),
        // HostResources: resources = 1, each a ResourceIdType (type = 1, id = 2).
        2 => fields(message(buf, wire)?, |tag, wire, buf| match tag {
            1 => fields(message(buf, wire)?, |tag, wire, buf| match tag {
                1 => varint(buf, wire).map(drop),
                2 => string(buf, wire).map(drop),
                _ => skip(buf, wire, tag),
            }),
            _ => skip(buf, wire, tag),
        }),
        _ => skip(buf, wire, tag),
    })
}

impl<'a> FixedIpRef<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, NotFast> {
        let mut out = Self::default();
        fields(buf, |tag, wire, buf| {
            match tag {
                1 => out.neighbor_type = varint(buf, wire)? as i32,
                2 => out.subnet_id = string(buf, wire)?,
                3 => out.ip_address = string(buf, wire)?,
                4 => drop(string(buf, wire)?),
                5 => out.tunnel_id = varint(buf, wire)? as u32,
                _ => skip(buf, wire, tag)?,
            }
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use prost::Message;

    /// Every neighbor of a sample goal state reads as prost reads it.
    #[test]
    fn reads_what_prost_reads() {
        let gs = sample::port_joining_subnet("127.1.0.1".parse().unwrap(), 20, 3, 1);
        let view = crate::wire::GoalStateV2View::decode(&gs.encode_to_vec()[..]).unwrap();
        assert_eq!(view.neighbor_states.len(), 20);
        for entry in &view.neighbor_states {
            let r = NeighborRef::parse(entry).unwrap();
            let want = &gs.neighbor_states[&format!("L2/{}", r.id)];
            let cfg = want.configuration.as_ref().unwrap();
            assert_eq!(r.operation_type, want.operation_type);
            assert_eq!(
                (r.id, r.vpc_id, r.mac_address, r.host_mac_address, r.host_ip_address),
                (
                    cfg.id.as_str(),
                    cfg.vpc_id.as_str(),
                    cfg.mac_address.as_str(),
                    cfg.host_mac_address.as_str(),
                    cfg.host_ip_address.as_str()
                )
            );
            let ips: Vec<_> = r.fixed_ips().collect();
            assert_eq!(ips.len(), cfg.fixed_ips.len());
            for (got, want) in ips.iter().zip(&cfg.fixed_ips) {
                assert_eq!(
                    (got.neighbor_type, got.subnet_id, got.ip_address, got.tunnel_id),
                    (
                        want.neighbor_type,
                        want.subnet_id.as_str(),
                        want.ip_address.as_str(),
                        want.tunnel_id
                    )
                );
            }
        }
    }

    #[test]
    fn gives_up_where_prost_would_fail_or_merge() {
        // Truncated value.
        assert_eq!(NeighborRef::parse(&[0x12, 0x09, 0x00]), Err(NotFast));
        // A string field that is not UTF-8: value { configuration { id = [0xff] } }.
        assert_eq!(
            NeighborRef::parse(&[0x12, 0x05, 0x12, 0x03, 0x1a, 0x01, 0xff]),
            Err(NotFast)
        );
        // The configuration twice (protobuf merges the two).
        assert_eq!(NeighborRef::parse(&[0x12, 0x04, 0x12, 0x00, 0x12, 0x00]), Err(NotFast));
        // id as a varint.
        assert_eq!(NeighborRef::parse(&[0x12, 0x04, 0x12, 0x02, 0x18, 0x01]), Err(NotFast));
        // An empty entry is an empty state, as prost reads it.
        assert_eq!(NeighborRef::parse(&[]), Ok(NeighborRef::default()));
    }
}
