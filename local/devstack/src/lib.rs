//! The local stack's parts that other tools reuse: the API Gateway + Lambda stand-in (the
//! cold-start benchmark serves its invocations through [`gateway::Function`]).

pub mod gateway;
