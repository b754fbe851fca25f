def test_placeholder(): import vpn
