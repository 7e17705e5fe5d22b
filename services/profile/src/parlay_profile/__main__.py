from parlay_profile.main import main

main()
