//! The controllers integration tests, one binary so the workspace links (and stores) fewer test executables.

mod common;
mod ephemeral_vip_controller;
mod leader_election;
mod loadbalancer_controller;
mod natgateway_controller;
mod network_controllers;
mod release_controllers;
