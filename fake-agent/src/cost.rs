//! Simulated data-plane programming cost: how long a real agent would spend programming OVS for
//! the work in one goal-state message.
//!
//! Models:
//! - `none`: no simulated cost, only the measured decode + apply time.
//! - `linear:port_us=…,neighbor_us=…,sg_rule_us=…,message_us=…`: fixed µs per resource (keys may be
//!   omitted; missing ones are 0).
//! - `aca-2020` and `aca-2021`: the real Alcor Control Agent's published message-processing curves
//!   (performance reference §1.1 and §1.2), interpolated. See [`Profile`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The work one message asks an agent to program, as the cost model sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Port states with CREATE, UPDATE or DELETE that were applied.
    pub ports: u64,
    /// Neighbor states with CREATE, UPDATE or DELETE that were applied (local ones are skipped).
    pub neighbors: u64,
    /// Security-group rules carried by applied security-group states.
    pub sg_rules: u64,
}

impl Work {
    /// True when nothing needs programming (an empty warm-up message, or context only).
    pub fn is_empty(&self) -> bool {
        self.ports == 0 && self.neighbors == 0 && self.sg_rules == 0
    }
}

/// A published curve of the real agent: total message time against the number of ports plus
/// neighbors in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// ACA V1, December 2020, release build, one port + N L2 neighbors on a physical host
    /// (`perf_N_neighbors_physical_2020_12_31.log`): 38 ms for 1+1 up to 237 s for 1+10k,
    /// superlinear.
    Aca2020,
    /// ACA after the OVS-driver refactor and batching, September 2021: 20 local ports + N
    /// neighbors (`ACA_GoalState_Processing_Optimization.adoc`, final column): 14 ms at 200 up to
    /// 55.4 s at 1M, about 53 µs per neighbor.
    Aca2021,
}

impl Profile {
    /// The published points as (ports + neighbors in the message, total milliseconds).
    pub fn points(self) -> &'static [(f64, f64)] {
        match self {
            Profile::Aca2020 => &[
                (2.0, 38.0),
                (11.0, 43.0),
                (101.0, 147.0),
                (1_001.0, 2_729.0),
                (10_001.0, 237_042.0),
            ],
            Profile::Aca2021 => &[
                (220.0, 14.0),
                (1_020.0, 112.0),
                (5_020.0, 261.0),
                (10_020.0, 534.0),
                (50_020.0, 2_589.0),
                (100_020.0, 5_195.0),
                (500_020.0, 26_617.0),
                (1_000_020.0, 55_369.0),
            ],
        }
    }

    /// Total simulated time for `units` ports + neighbors in one message.
    ///
    /// Between published points the curve is a power law (straight in log-log), which is how the
    /// agent's cost grows; past the last point the last segment's exponent continues. Below the
    /// first point no figure was published, so the cost falls linearly to zero at zero units.
    pub fn cost(self, units: u64) -> Duration {
        if units == 0 {
            return Duration::ZERO;
        }
        let pts = self.points();
        let x = units as f64;
        let ms = if x <= pts[0].0 {
            pts[0].1 * x / pts[0].0
        } else {
            let i = pts.windows(2).position(|w| x <= w[1].0).unwrap_or(pts.len() - 2);
            let ((x0, y0), (x1, y1)) = (pts[i], pts[i + 1]);
            let slope = (y1.ln() - y0.ln()) / (x1.ln() - x0.ln());
            (y0.ln() + slope * (x.ln() - x0.ln())).exp()
        };
        Duration::from_secs_f64(ms / 1_000.0)
    }
}

/// How much simulated data-plane programming time a message costs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CostModel {
    /// No simulated cost.
    #[default]
    None,
    /// Fixed microseconds per resource and per non-empty message.
    Linear {
        /// µs per applied port state.
        port_us: f64,
        /// µs per applied neighbor state.
        neighbor_us: f64,
        /// µs per security-group rule.
        sg_rule_us: f64,
        /// µs per message that has any work.
        message_us: f64,
    },
    /// A published curve of the real agent.
    Profile(Profile),
}

/// The simulated cost of one message, split the way the reply reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Total simulated time for the message.
    pub total: Duration,
    /// Share charged to each port state.
    pub per_port: Duration,
    /// Share charged to each neighbor state.
    pub per_neighbor: Duration,
}

impl CostModel {
    /// Simulated programming cost of `work`.
    pub fn cost(&self, work: &Work) -> Cost {
        if work.is_empty() {
            return Cost::default();
        }
        match *self {
            CostModel::None => Cost::default(),
            CostModel::Linear {
                port_us,
                neighbor_us,
                sg_rule_us,
                message_us,
            } => {
                let us = message_us
                    + port_us * work.ports as f64
                    + neighbor_us * work.neighbors as f64
                    + sg_rule_us * work.sg_rules as f64;
                Cost {
                    total: Duration::from_secs_f64(us / 1e6),
                    per_port: Duration::from_secs_f64(port_us / 1e6),
                    per_neighbor: Duration::from_secs_f64(neighbor_us / 1e6),
                }
            }
            CostModel::Profile(p) => {
                // The real agent does not program security groups (protocol reference §1.10), so
                // only ports and neighbors count; the total is shared evenly between them.
                let units = work.ports + work.neighbors;
                let total = p.cost(units);
                let each = if units == 0 {
                    Duration::ZERO
                } else {
                    total / units as u32
                };
                Cost {
                    total,
                    per_port: each,
                    per_neighbor: each,
                }
            }
        }
    }
}

/// A cost-model string that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "invalid cost model `{input}`: {reason} (expected none, aca-2020, aca-2021, or linear:port_us=N,neighbor_us=N,sg_rule_us=N,message_us=N)"
)]
pub struct CostModelParseError {
    input: String,
    reason: String,
}

impl FromStr for CostModel {
    type Err = CostModelParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| CostModelParseError {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        match s.trim() {
            "none" => Ok(CostModel::None),
            "aca-2020" => Ok(CostModel::Profile(Profile::Aca2020)),
            "aca-2021" => Ok(CostModel::Profile(Profile::Aca2021)),
            other => {
                let Some(params) = other.strip_prefix("linear") else {
                    return Err(err("unknown model"));
                };
                let params = params.strip_prefix(':').unwrap_or(params);
                let (mut port_us, mut neighbor_us, mut sg_rule_us, mut message_us) = (0.0, 0.0, 0.0, 0.0);
                for kv in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| err(&format!("`{kv}` is not key=value")))?;
                    let v: f64 = v
                        .trim()
                        .parse()
                        .ok()
                        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                        .ok_or_else(|| err(&format!("`{v}` is not a non-negative number of µs")))?;
                    match k.trim() {
                        "port_us" => port_us = v,
                        "neighbor_us" => neighbor_us = v,
                        "sg_rule_us" => sg_rule_us = v,
                        "message_us" => message_us = v,
                        k => return Err(err(&format!("unknown key `{k}`"))),
                    }
                }
                Ok(CostModel::Linear {
                    port_us,
                    neighbor_us,
                    sg_rule_us,
                    message_us,
                })
            }
        }
    }
}

impl fmt::Display for CostModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CostModel::None => f.write_str("none"),
            CostModel::Profile(Profile::Aca2020) => f.write_str("aca-2020"),
            CostModel::Profile(Profile::Aca2021) => f.write_str("aca-2021"),
            CostModel::Linear {
                port_us,
                neighbor_us,
                sg_rule_us,
                message_us,
            } => write!(
                f,
                "linear:port_us={port_us},neighbor_us={neighbor_us},sg_rule_us={sg_rule_us},message_us={message_us}"
            ),
        }
    }
}

impl TryFrom<String> for CostModel {
    type Error = CostModelParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CostModel> for String {
    fn from(m: CostModel) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    #[test]
    fn profiles_pass_through_published_points() {
        for p in [Profile::Aca2020, Profile::Aca2021] {
            for &(units, want) in p.points() {
                let got = ms(p.cost(units as u64));
                assert!((got - want).abs() / want < 1e-6, "{p:?} at {units}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn aca_2021_is_about_53us_per_neighbor_at_scale() {
        let c = CostModel::Profile(Profile::Aca2021);
        let work = Work {
            ports: 20,
            neighbors: 30_000,
            sg_rules: 0,
        };
        let per = c.cost(&work).total.as_secs_f64() / 30_020.0 * 1e6;
        assert!((45.0..60.0).contains(&per), "{per} µs/neighbor");
        // Between published points the curve is monotonic.
        assert!(Profile::Aca2021.cost(30_000) > Profile::Aca2021.cost(20_000));
        assert!(Profile::Aca2021.cost(2_000_000) > Profile::Aca2021.cost(1_000_020));
    }

    #[test]
    fn aca_2020_is_superlinear() {
        let per_1k = ms(Profile::Aca2020.cost(1_001)) / 1_001.0;
        let per_5k = ms(Profile::Aca2020.cost(5_000)) / 5_000.0;
        assert!(per_5k > per_1k * 2.0);
    }

    #[test]
    fn linear_adds_up_and_sg_rules_count_only_there() {
        let m: CostModel = "linear:port_us=100,neighbor_us=10,sg_rule_us=1,message_us=1000"
            .parse()
            .unwrap();
        let c = m.cost(&Work {
            ports: 2,
            neighbors: 30,
            sg_rules: 5,
        });
        assert_eq!(c.total, Duration::from_micros(1000 + 200 + 300 + 5));
        assert_eq!(c.per_neighbor, Duration::from_micros(10));
        let p = CostModel::Profile(Profile::Aca2021).cost(&Work {
            ports: 0,
            neighbors: 0,
            sg_rules: 50,
        });
        assert_eq!(p.total, Duration::ZERO);
        assert_eq!(
            m.cost(&Work::default()).total,
            Duration::ZERO,
            "empty warm-up costs nothing"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        for s in [
            "none",
            "aca-2020",
            "aca-2021",
            "linear:port_us=1.5,neighbor_us=2,sg_rule_us=0,message_us=3",
        ] {
            let m: CostModel = s.parse().unwrap();
            assert_eq!(m.to_string().parse::<CostModel>().unwrap(), m);
        }
        assert_eq!(
            "linear:neighbor_us=13".parse::<CostModel>().unwrap(),
            CostModel::Linear {
                port_us: 0.0,
                neighbor_us: 13.0,
                sg_rule_us: 0.0,
                message_us: 0.0
            }
        );
        for bad in [
            "aca-2022",
            "linear:neighbor=13",
            "linear:port_us=-1",
            "linear:port_us=x",
            "linear:port_us",
        ] {
            let e = bad.parse::<CostModel>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
