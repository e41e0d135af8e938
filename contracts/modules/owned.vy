# pragma version ~=0.4.3
# SPDX-License-Identifier: Apache-2.0
"""
@title owned
@custom:contract-name owned
@license Apache-2.0
@notice One owner per contract: the deployer at first, then whoever the owner hands the
        contract to. Ours, so the production contracts compile in no third-party code
        (the revert texts match snekmate's `ownable`, which the contracts used before).
"""


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


owner: public(address)


@deploy
def __init__():
    self._set_owner(msg.sender)


@external
def transfer_ownership(new_owner: address):
    """
    @notice Hand the contract to `new_owner`. Only the current owner may, and never to the
            zero address (that would strand every owner-only function).
    @param new_owner The next owner.
    """
    self._check_owner()
    assert new_owner != empty(address), "ownable: new owner is the zero address"
    self._set_owner(new_owner)


@internal
def _check_owner():
    assert msg.sender == self.owner, "ownable: caller is not the owner"


@internal
def _set_owner(new_owner: address):
    previous: address = self.owner
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=previous, new_owner=new_owner)
